"""Route files, DIR-24-8, IPv6 binary search on lengths, IPv4Lookup / IPv6Lookup.

Tables are checked against a brute-force longest-prefix match (hypothesis); modules on crafted
frames, both by calling ``process`` directly and through a real Pipeline + Runtime.
"""
import socket
import struct
import time

import dpkt
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailgate.core.clock import VirtualClock
from tailgate.core.errors import ArgError
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.runtime import Runtime
from tailgate.nf.basic import Sink
from tailgate.nf.lookup import (
    Dir24_8,
    IPv4Lookup,
    IPv6Lookup,
    IPv6LPM,
    load_routes,
    parse_prefix,
    parse_routes_text,
    routes_from_list,
)
from tailgate.packet.addr import parse_ipv4, parse_ipv6
from tailgate.packet.pool import PacketPool
from tailgate.dataplane.drive import drive

U64 = (1 << 64) - 1


# -- references and helpers ----------------------------------------------------------------------
def brute_lpm(prefixes, lengths, gates, addrs, bits):
    """Longest match; among equal (prefix, length) the later route wins. Python ints."""
    out = []
    for a in addrs:
        best_len, best_gate = -1, -1
        for p, ln, g in zip(prefixes, lengths, gates):
            mask = ((1 << bits) - 1) ^ ((1 << (bits - ln)) - 1)
            if (a & mask) == (p & mask) and ln >= best_len:
                best_len, best_gate = ln, g
        out.append(best_gate)
    return np.array(out, dtype=np.int64)


def v4s(a: int) -> str:
    return socket.inet_ntoa(a.to_bytes(4, "big"))


def v6s(a: int) -> str:
    return socket.inet_ntop(socket.AF_INET6, a.to_bytes(16, "big"))


def split6(addrs):
    hi = np.array([a >> 64 for a in addrs], dtype=np.uint64)
    lo = np.array([a & U64 for a in addrs], dtype=np.uint64)
    return hi, lo


def probe_addresses(prefixes, lengths, bits, rnd):
    """Addresses at, inside, just below and just past every prefix, plus random ones."""
    out = []
    for p, ln in zip(prefixes, lengths):
        size = 1 << (bits - ln)
        out += [p, (p + size - 1), (p + size) % (1 << bits), (p - 1) % (1 << bits), p + rnd.randrange(size)]
    out += [rnd.randrange(1 << bits) for _ in range(20)]
    return out


def udp_frame(src="10.0.0.1", dst="10.0.0.2", sport=1000, dport=2000, payload=b"x" * 18) -> bytes:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=17, ttl=64, data=udp)
    ip.len = 20 + len(bytes(udp))
    eth = dpkt.ethernet.Ethernet(dst=b"\x02\x00\x00\x00\x00\x02", src=b"\x02\x00\x00\x00\x00\x01", type=0x0800, data=ip)
    return bytes(eth)


def ip6_udp_frame(src="2001:db8::1", dst="2001:db8::2", sport=1000, dport=2000, payload=b"x" * 10) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip6 = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + socket.inet_pton(socket.AF_INET6, src) + \
        socket.inet_pton(socket.AF_INET6, dst)
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x86\xdd" + ip6 + udp


def arp_frame() -> bytes:
    arp = dpkt.arp.ARP()
    eth = dpkt.ethernet.Ethernet(dst=b"\xff" * 6, src=b"\x02\x00\x00\x00\x00\x01", type=0x0806, data=arp)
    return bytes(eth)


def run_direct(module, frames):
    """Call ``process`` once on a batch of ``frames``; returns ({gate: [frames]}, pool)."""
    return drive(module, frames)


# -- addresses ---------------------------------------------------------------------------------------
def test_parse_addresses_and_prefixes():
    assert parse_ipv4("10.1.2.3") == 0x0A010203
    assert parse_ipv6("2001:db8::1") == (0x20010DB8 << 96) | 1
    assert parse_prefix("10.1.2.3/8") == (0x0A000000, 8, True)
    assert parse_prefix("10.0.0.0/8") == (0x0A000000, 8, False)
    assert parse_prefix("0.0.0.0/0") == (0, 0, False)
    assert parse_prefix("2001:db8::/32", 6) == (0x20010DB8 << 96, 32, False)
    for bad in ["10.0.0/8", "10.0.0.0.0/8", "1.2.3.256/8", "10.0.0.0", "10.0.0.0/33", "10.0.0.0/-1", "a.b.c.d/8"]:
        with pytest.raises(ValueError):
            parse_prefix(bad)
    with pytest.raises(ValueError):
        parse_prefix("2001:db8::/129", 6)


# -- route files -------------------------------------------------------------------------------------
def test_route_text_comments_blank_lines_and_host_bits():
    text = "# header\n\n10.0.0.0/8 1\n   10.1.2.3/16\t2   # host bits set: masked\n\r\n0.0.0.0/0 0\n"
    p, ln, g, lines = parse_routes_text(text, 4, with_lines=True)
    assert p.dtype == np.uint32
    assert p.tolist() == [0x0A000000, 0x0A010000, 0]
    assert ln.tolist() == [8, 16, 0]
    assert g.tolist() == [1, 2, 0]
    assert lines.tolist() == [3, 4, 6]


def test_route_text_ipv6():
    p, ln, g = parse_routes_text("2001:db8::/32 1\n2001:db8:1:2::ff/64 2\n::/0 0\n::ffff:1.2.3.4/128 3\n", 6)
    assert p.dtype == np.uint64 and p.shape == (4, 2)
    assert p[0].tolist() == [0x20010DB800000000, 0]
    assert p[1].tolist() == [0x20010DB800010002, 0]  # host bits masked
    assert p[3].tolist() == [0, 0x0000FFFF01020304]
    assert ln.tolist() == [32, 64, 0, 128] and g.tolist() == [1, 2, 0, 3]


@pytest.mark.parametrize(
    "bad, family, msg",
    [
        ("10.0.0/8 1", 4, "bad IPv4 address"),
        ("10.0.0.0/33 1", 4, "out of range 0..32"),
        ("10.0.0.0/8 one", 4, "bad gate"),
        ("10.0.0.0/8 -1", 4, "bad gate"),
        ("10.0.0.0/8", 4, "got 1 field"),
        ("10.0.0.0/8 1 2", 4, "got 3 field"),
        ("10.0.0.0 1", 4, "no /LENGTH"),
        ("10.0.0.0/x 1", 4, "bad prefix length"),
        ("2001:db8::/129 1", 6, "out of range 0..128"),
        ("2001:zz8::/32 1", 6, "bad IPv6 address"),
        ("10.0.0.0/8 1", 6, "bad IPv6 address"),
    ],
)
def test_route_file_errors_name_file_and_line(tmp_path, bad, family, msg):
    good = "::/0 0" if family == 6 else "0.0.0.0/0 0"
    f = tmp_path / "routes.txt"
    f.write_text(f"# routes\n{good}\n\n{bad}  # the bad one\n{good}\n")
    with pytest.raises(ArgError, match=rf"routes\.txt line 4: .*{msg}"):
        load_routes(f, family)


def test_missing_route_file_is_an_arg_error(tmp_path):
    with pytest.raises(ArgError, match="nope.txt"):
        load_routes(tmp_path / "nope.txt")


def test_routes_from_list_errors_name_the_index():
    p, ln, g = routes_from_list([("10.0.0.0/8", 1), "10.1.0.0/16 2"])
    assert p.tolist() == [0x0A000000, 0x0A010000] and g.tolist() == [1, 2]
    with pytest.raises(ArgError, match=r"routes_list\[1\]: .*bad IPv4"):
        routes_from_list([("10.0.0.0/8", 1), ("10.0.0/8", 1)])
    with pytest.raises(ArgError, match=r"routes_list\[0\]: bad gate"):
        routes_from_list([("10.0.0.0/8", -3)])


def write_routes(path, n, rnd_seed=1, family=4):
    rng = np.random.default_rng(rnd_seed)
    gates = rng.integers(0, 8, n)
    if family == 4:
        a = rng.integers(0, 2**32, n, dtype=np.uint64)
        lens = rng.choice([8, 12, 16, 18, 20, 22, 23, 24, 24, 24, 24, 24, 26, 28, 32], n)
        body = "\n".join(f"{v4s(int(x))}/{l} {g}" for x, l, g in zip(a, lens, gates))
    else:
        hi = rng.integers(0, 2**62, n, dtype=np.uint64) | np.uint64(1 << 61)
        lo = rng.integers(0, 2**62, n, dtype=np.uint64)
        lens = rng.choice([16, 24, 32, 40, 44, 48, 48, 56, 64, 96, 128], n)
        body = "\n".join(f"{v6s((int(h) << 64) | int(l))}/{ln} {g}" for h, l, ln, g in zip(hi, lo, lens, gates))
    path.write_text("# generated\n" + body + "\n")


@pytest.mark.parametrize("family", [4, 6])
def test_load_100k_routes_fast(tmp_path, family):
    f = tmp_path / "big.txt"
    n = 100_000
    write_routes(f, n, family=family)
    load_routes(f, family)  # warm the numba cache
    t0 = time.perf_counter()
    p, ln, g = load_routes(f, family)
    dt = time.perf_counter() - t0
    assert len(p) == len(ln) == len(g) == n
    assert dt < 1.0, f"loading {n} routes took {dt:.3f} s"
    table = Dir24_8(p, ln, g) if family == 4 else IPv6LPM(p, ln, g)
    # spot-check lookups against brute force over the whole table
    rng = np.random.default_rng(7)
    pick = rng.integers(0, n, 40)
    if family == 4:
        pl = [int(x) for x in p]
        addrs = [pl[i] | (int(rng.integers(0, 1 << 30)) & ((1 << (32 - int(ln[i]))) - 1)) for i in pick]
        got = table.lookup(np.array(addrs, dtype=np.uint32))
        pre = np.array(pl, dtype=np.int64)
        masks = ((0xFFFFFFFF << (32 - ln)) & 0xFFFFFFFF).astype(np.int64)
        for a, gg in zip(addrs, got):
            m = (a & masks) == pre
            best = np.flatnonzero(m & (ln == ln[m].max()))[-1]
            assert gg == g[best]
    else:
        import random

        rnd = random.Random(3)
        pl = [(int(h) << 64) | int(l) for h, l in p]
        addrs = [pl[i] | (rnd.getrandbits(128) & ((1 << (128 - int(ln[i]))) - 1)) for i in pick]
        got = table.lookup(*split6(addrs))
        mh = np.where(ln >= 64, np.uint64(U64), (np.uint64(U64) << np.minimum(64 - ln, 63).astype(np.uint64)))
        mh = np.where(ln == 0, np.uint64(0), mh).astype(np.uint64)
        ml = np.where(ln <= 64, np.uint64(0), np.uint64(U64) << np.minimum(128 - ln, 63).astype(np.uint64))
        ml = np.where(ln == 128, np.uint64(U64), ml).astype(np.uint64)
        for a, gg in zip(addrs, got):
            ah, al = np.uint64(a >> 64), np.uint64(a & U64)
            m = ((ah & mh) == p[:, 0]) & ((al & ml) == p[:, 1])
            best = np.flatnonzero(m & (ln == ln[m].max()))[-1]
            assert gg == g[best]


# -- DIR-24-8 ------------------------------------------------------------------------------------------
routes_v4 = st.lists(
    st.tuples(st.integers(0, 2**32 - 1), st.sampled_from(list(range(0, 33)) + [8, 16, 24, 24, 25, 30, 32]),
              st.integers(0, 5)),
    min_size=0,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routes=routes_v4, seed=st.integers(0, 2**32))
def test_dir24_8_matches_brute_force(routes, seed):
    import random

    rnd = random.Random(seed)
    # nest some routes inside others so that longest-match really has to choose
    routes = list(routes) + [(a ^ rnd.randrange(256), min(32, ln + rnd.randrange(1, 9)), g) for a, ln, g in routes[:10]]
    pfx = [a & (((1 << 32) - 1) ^ ((1 << (32 - ln)) - 1)) for a, ln, _ in routes]
    lens = [ln for _, ln, _ in routes]
    gates = [g for _, _, g in routes]
    table = Dir24_8(np.array([a for a, _, _ in routes], dtype=np.uint32), np.array(lens), np.array(gates))
    addrs = probe_addresses(pfx, lens, 32, rnd)
    got = table.lookup(np.array(addrs, dtype=np.uint32))
    np.testing.assert_array_equal(got, brute_lpm(pfx, lens, gates, addrs, 32))


def test_dir24_8_longest_wins_regardless_of_order_and_later_duplicate_wins():
    r = [("10.1.2.0/25", 3), ("10.1.2.3/32", 4), ("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("10.0.0.0/8", 5)]
    p, ln, g = routes_from_list(r)
    t = Dir24_8(p, ln, g)
    q = ["10.1.2.3", "10.1.2.4", "10.1.2.200", "10.1.3.1", "10.2.0.0", "11.0.0.0"]
    assert t.lookup(np.array([parse_ipv4(x) for x in q], dtype=np.uint32)).tolist() == [4, 3, 2, 2, 5, -1]
    assert t.n_groups == 1


def test_dir24_8_limits():
    with pytest.raises(ValueError, match="gates"):
        Dir24_8(np.array([0], np.uint32), np.array([8]), np.array([40000]))
    with pytest.raises(ValueError, match="lengths"):
        Dir24_8(np.array([0], np.uint32), np.array([33]), np.array([1]))
    n = 32769
    with pytest.raises(ValueError, match="tbl8 groups"):
        Dir24_8((np.arange(n, dtype=np.uint32) << 8) | 1, np.full(n, 32), np.zeros(n, np.int64))


def test_dir24_8_empty_table():
    t = Dir24_8(np.zeros(0, np.uint32), np.zeros(0), np.zeros(0))
    assert t.lookup(np.array([1, 2, 3], np.uint32)).tolist() == [-1, -1, -1]


# -- IPv6 ----------------------------------------------------------------------------------------------
def _prefix6(a, ln):
    return a & (((1 << 128) - 1) ^ ((1 << (128 - ln)) - 1))


routes_v6 = st.lists(
    st.tuples(
        st.integers(0, 2**128 - 1),
        st.one_of(st.integers(0, 128), st.sampled_from([0, 1, 16, 32, 48, 63, 64, 65, 96, 127, 128])),
        st.integers(0, 9),
    ),
    min_size=0,
    max_size=40,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routes=routes_v6, seed=st.integers(0, 2**32))
def test_ipv6_lpm_matches_brute_force(routes, seed):
    import random

    rnd = random.Random(seed)
    # derive nested routes (longer and shorter) from the drawn ones: the interesting cases for markers
    extra = []
    for a, ln, g in routes[:12]:
        extra.append((a, min(128, ln + rnd.randrange(1, 40)), rnd.randrange(10)))
        extra.append((a, max(0, ln - rnd.randrange(1, 40)), rnd.randrange(10)))
    routes = list(routes) + extra
    pfx = [_prefix6(a, ln) for a, ln, _ in routes]
    lens = [ln for _, ln, _ in routes]
    gates = [g for _, _, g in routes]
    arr = np.array([[a >> 64, a & U64] for a, _, _ in routes], dtype=np.uint64).reshape(-1, 2)
    table = IPv6LPM(arr, np.array(lens), np.array(gates))
    addrs = probe_addresses(pfx, lens, 128, rnd)
    got = table.lookup(*split6(addrs))
    np.testing.assert_array_equal(got, brute_lpm(pfx, lens, gates, addrs, 128))


def test_ipv6_lpm_marker_does_not_mislead():
    # Classic failure of binary search without best-matching-prefix on markers: a marker for the
    # /64 at length 48 sends the search long, where nothing matches; the answer must be the /16.
    r = [("2001::/16", 1), ("2001:db8:1::/48", 2), ("2001:db8:1:2::/64", 3), ("2001:db8:1:2::/96", 4),
         ("2001:db8:1:2::1/128", 5)]
    p, ln, g = routes_from_list(r, 6)
    t = IPv6LPM(p, ln, g)
    q = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:1::", "2001:db8:1:3::", "2001:db8:2::", "2001:1::",
         "3000::"]
    got = t.lookup(*split6([parse_ipv6(x) for x in q]))
    assert got.tolist() == [5, 4, 3, 2, 1, 1, -1]
    b = np.frombuffer(b"".join(socket.inet_pton(socket.AF_INET6, x) for x in q), np.uint8).reshape(-1, 16)
    assert t.lookup_bytes(b).tolist() == got.tolist()


# -- partition (Module.emit_codes, which the lookup modules use) -------------------------------------
def test_emit_codes_keeps_order_within_gates(pipeline):
    from tailgate.dataplane.module import Module

    class Three(Module):
        drop_reasons = ("a", "b")

        def setup(self):
            self.n_ogates = 3

    m = Three()
    pool = PacketPool(n_slots=16)
    b = pool.alloc(10)
    idx = b.idx.tolist()
    codes = np.array([1, 0, -1, 1, -2, 0, 2, 1, -1, 0], np.int32)
    m.emit_codes(b, codes)
    got = {g: bb.idx.tolist() for g, bb in m._out}
    assert got == {0: [idx[i] for i in (1, 5, 9)], 1: [idx[i] for i in (0, 3, 7)], 2: [idx[6]]}
    assert m.drop_counts.tolist() == [2, 1] and pool.n_used == 7


# -- modules ------------------------------------------------------------------------------------------
ROUTES4 = [("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("10.1.2.0/24", 3), ("10.1.2.128/25", 0), ("192.168.1.1/32", 2)]


def test_ipv4_lookup_crafted_packets(pipeline):
    m = IPv4Lookup(routes_list=ROUTES4)
    assert m.n_ogates == 4
    frames = [
        udp_frame(dst="10.9.9.9"),  # /8 -> 1
        udp_frame(dst="10.1.9.9"),  # /16 -> 2
        udp_frame(dst="10.1.2.3"),  # /24 -> 3
        udp_frame(dst="10.1.2.200"),  # /25 -> 0
        udp_frame(dst="192.168.1.1"),  # /32 -> 2
        udp_frame(dst="192.168.1.2"),  # no route
        ip6_udp_frame(),  # not IPv4
        arp_frame(),  # not IPv4
        b"\x00" * 10,  # runt: not IPv4
    ]
    out, pool = run_direct(m, frames)
    assert out == {1: [frames[0]], 2: [frames[1], frames[4]], 3: [frames[2]], 0: [frames[3]]}
    c = m.counters()
    assert c["drops.no_route"] == 1 and c["drops.not_ipv4"] == 3
    assert pool.n_used == 5  # dropped packets went back to the pool


def test_ipv4_lookup_default_gate_and_single_gate_passes_batch_through(pipeline):
    m = IPv4Lookup(routes_list=[("10.0.0.0/8", 1)], default_gate=0)
    frames = [udp_frame(dst="10.0.0.1"), udp_frame(dst="11.0.0.1")]
    out, _ = run_direct(m, frames)
    assert out == {1: [frames[0]], 0: [frames[1]]}
    m2 = IPv4Lookup(routes_list=[("0.0.0.0/0", 0)])
    pool = PacketPool(n_slots=64)
    b = pool.from_frames([udp_frame(dst="1.2.3.4")] * 5)
    hv = b.headers
    m2.process(b)
    assert len(m2._out) == 1 and m2._out[0][1] is b and b.headers is hv  # headers stay cached


def test_ipv4_lookup_scratch_grows_and_matches_the_table(pipeline):
    """The module keeps its scratch buffers between batches: a bigger batch grows them, a smaller
    one after it must not see stale codes; every fate matches Dir24_8.lookup."""
    m = IPv4Lookup(routes_list=ROUTES4 + [("11.0.0.0/8", 3)])
    rng = np.random.default_rng(5)
    pool = PacketPool(n_slots=2048)
    for n in (700, 3, 256, 1):
        addrs = rng.choice([0x0A090909, 0x0A010909, 0x0A010203, 0x0A0102C8, 0xC0A80101, 0xC0A80102, 0x0B000001], n)
        frames = [udp_frame(dst=socket.inet_ntoa(struct.pack("!I", int(a)))) for a in addrs]
        if n > 2:
            frames[1] = arp_frame()
        want = m.table.lookup(addrs.astype(np.uint32)).tolist()
        b = pool.from_frames(frames)
        idx = b.idx.tolist()
        m.reset_counters()
        m.process(b)
        got = {}
        for g, bb in m._out:
            for s in bb.idx.tolist():
                got[s] = g
        m._out.clear()
        for k, s in enumerate(idx):
            if n > 2 and k == 1:
                assert s not in got
            elif want[k] < 0:
                assert s not in got
            else:
                assert got[s] == want[k]
        c = m.counters()
        assert c["drops.not_ipv4"] == (1 if n > 2 else 0)
        assert c["drops.no_route"] == sum(1 for k, w in enumerate(want) if w < 0 and not (n > 2 and k == 1))
        pool.free_idx(np.array(sorted(got), np.int32))
        assert pool.n_used == 0
    # a whole batch without a route is dropped and freed
    b = pool.from_frames([udp_frame(dst="192.168.1.2")] * 4)
    m.reset_counters()
    m.process(b)
    assert m._out == [] and m.counters()["drops.no_route"] == 4 and pool.n_used == 0


def test_ipv4_lookup_argument_errors(tmp_path, pipeline):
    f = tmp_path / "rt.txt"
    f.write_text("# x\n10.0.0.0/8 1\n\n11.0.0.0/8 7\n")
    with pytest.raises(ArgError, match=r"rt\.txt line 4: gate 7 is out of range \(the module has 4 output gates"):
        IPv4Lookup(routes=str(f), gates=4)
    with pytest.raises(ArgError, match=r"routes_list\[1\]: gate 9 is out of range"):
        IPv4Lookup(routes_list=[("10.0.0.0/8", 0), ("11.0.0.0/8", 9)], gates=2)
    with pytest.raises(ArgError, match="exactly one of"):
        IPv4Lookup()
    with pytest.raises(ArgError, match="exactly one of"):
        IPv4Lookup(routes=str(f), routes_list=[])
    with pytest.raises(ArgError, match="default_gate 3 is out of range"):
        IPv4Lookup(routes_list=[("10.0.0.0/8", 0)], gates=2, default_gate=3)
    m = IPv4Lookup(routes=str(f), gates=8)
    assert m.n_ogates == 8
    f2 = tmp_path / "bad.txt"
    f2.write_text("1.0.0.0/8 0\n1.2.3/8 0\n")
    with pytest.raises(ArgError, match=r"IPv4Lookup\(.*\): .*bad\.txt line 2: .*bad IPv4"):
        IPv4Lookup(routes=str(f2))


def test_ipv4_lookup_file_and_knob_rebuild(tmp_path, pipeline):
    f = tmp_path / "rt.txt"
    f.write_text("10.0.0.0/8 1\n0.0.0.0/0 0\n")
    m = IPv4Lookup(routes=str(f))
    assert m.counter("routes") == 2
    frames = [udp_frame(dst="10.0.0.1"), udp_frame(dst="20.0.0.1")]
    out, _ = run_direct(m, frames)
    assert out == {1: [frames[0]], 0: [frames[1]]}
    m.set("routes_list", [("20.0.0.0/8", 1)])
    assert m.routes is None
    out, _ = run_direct(m, frames)
    assert out == {1: [frames[1]]} and m.counter("drops.no_route") == 1
    with pytest.raises(ArgError, match="gate 5 is out of range"):
        m.set("routes_list", [("30.0.0.0/8", 5)])
    assert m.get("routes_list") == [("20.0.0.0/8", 1)] and m.routes is None  # old table kept
    out, _ = run_direct(m, frames)
    assert out == {1: [frames[1]]}


def test_ipv4_lookup_in_pipeline(frame_source):
    FrameSource = frame_source
    frames = [udp_frame(dst=d) for d in ["10.0.0.1", "10.1.0.1", "10.1.2.3", "8.8.8.8"]]
    with Pipeline() as p:
        src = FrameSource(frames=frames, repeat=50)
        rt = IPv4Lookup(routes_list=ROUTES4)
        sinks = [Sink(name=f"s{g}") for g in range(4)]
        src >> rt
        for g in range(4):
            rt[g] >> sinks[g]
        rt_ = Runtime(p, VirtualClock(), burst=32)
        rt_.run()
    assert rt.counter("packets_in") == 200
    assert [s.counter("packets_in") for s in sinks] == [0, 50, 50, 50]
    assert rt.counter("drops.no_route") == 50
    assert rt_.pool.n_used == 0


def test_ipv6_lookup_crafted_packets(pipeline):
    m = IPv6Lookup(routes_list=[("2001:db8::/32", 1), ("2001:db8:1::/48", 2), ("2001:db8:1::1/128", 0)])
    frames = [
        ip6_udp_frame(dst="2001:db8::5"),
        ip6_udp_frame(dst="2001:db8:1::5"),
        ip6_udp_frame(dst="2001:db8:1::1"),
        ip6_udp_frame(dst="2001:db9::1"),
        udp_frame(dst="10.0.0.1"),
    ]
    out, _ = run_direct(m, frames)
    assert out == {1: [frames[0]], 2: [frames[1]], 0: [frames[2]]}
    assert m.counter("drops.no_route") == 1 and m.counter("drops.not_ipv6") == 1


def test_ipv6_lookup_file_errors(tmp_path, pipeline):
    f = tmp_path / "rt6.txt"
    f.write_text("::/0 0\n2001:db8::/32 5\n")
    with pytest.raises(ArgError, match=r"rt6\.txt line 2: gate 5 is out of range"):
        IPv6Lookup(routes=str(f), gates=2)
    m = IPv6Lookup(routes=str(f))
    assert m.n_ogates == 6
