"""The examples, end to end: the router over a crafted capture (checked with dpkt), the pipeline.

``write_capture`` / ``ipv4_udp`` are the helpers to make captures for tests and for trying the
examples by hand.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import shlex
import socket
from pathlib import Path

import dpkt
import pytest
from typer.testing import CliRunner

from tailgate.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROUTER_MAC = b"\x02\x00\x00\x00\x00\xfe"
TS0 = 1_700_000_000.0


def ipv4_udp(dst: str, *, src: str = "172.16.0.1", ttl: int = 64, payload: bytes = b"x" * 18, sport: int = 1000) -> bytes:
    """A valid Ethernet/IPv4/UDP frame, built with dpkt (checksums by dpkt)."""
    udp = dpkt.udp.UDP(sport=sport, dport=53, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=17, ttl=ttl, data=udp)
    ip.len = 20 + udp.ulen
    eth = dpkt.ethernet.Ethernet(dst=b"\x02\x00\x00\x00\x00\x02", src=b"\x02\x00\x00\x00\x00\x01", type=0x0800, data=ip)
    return bytes(eth)


def arp_frame() -> bytes:
    arp = dpkt.arp.ARP(op=dpkt.arp.ARP_OP_REQUEST, sha=b"\x02\x00\x00\x00\x00\x01", spa=socket.inet_aton("10.1.0.1"),
                       tha=b"\x00" * 6, tpa=socket.inet_aton("10.1.0.2"))  # fmt: skip
    return bytes(dpkt.ethernet.Ethernet(dst=b"\xff" * 6, src=b"\x02\x00\x00\x00\x00\x01", type=0x0806, data=arp))


def write_capture(path, frames, ts0: float = TS0, gap_s: float = 1e-3) -> Path:
    """A classic pcap file written with dpkt (an independent writer), one frame every ``gap_s``."""
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i, fr in enumerate(frames):
            w.writepkt(fr, ts=ts0 + i * gap_s)
    return Path(path)


def read_capture(path) -> list[tuple[float, bytes]]:
    with open(path, "rb") as f:
        return [(float(ts), bytes(buf)) for ts, buf in dpkt.pcap.UniversalReader(f)]


def load_routes(path) -> list[tuple[ipaddress.IPv4Network, int]]:
    routes = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pfx, gate = line.split()
            routes.append((ipaddress.ip_network(pfx, strict=False), int(gate)))
    return routes


def next_hop(routes, dst: str) -> int:
    """Longest-prefix match, the slow obvious way (the oracle for IPv4Lookup)."""
    a = ipaddress.ip_address(dst)
    best = max((net.prefixlen, gate) for net, gate in routes if a in net)
    return best[1]


def counters(out_dir) -> dict[tuple[str, str], int]:
    with open(Path(out_dir) / "counters.csv", newline="") as f:
        return {(r["module"], r["counter"]): float(r["value"]) for r in csv.DictReader(f)}


def test_router_end_to_end(tmp_path):
    routes_file = EXAMPLES / "routes.txt"
    routes = load_routes(routes_file)
    dsts = ["10.1.0.5", "10.1.77.1", "10.2.3.4", "10.2.200.9", "192.168.0.77", "8.8.8.8", "10.2.127.255", "10.3.0.1"]
    valid = [ipv4_udp(d, ttl=64 - i, payload=f"valid-{i:03d}".encode() * 2, sport=2000 + i) for i, d in enumerate(dsts)]
    valid.append(ipv4_udp("10.2.3.5", ttl=2, payload=b"last-hop-ok-" * 2))  # leaves with TTL 1
    ihl = bytearray(ipv4_udp("10.1.0.9", payload=b"bad-ihl" * 3))
    ihl[14] = 0x44  # IHL 4 < 5
    csum = bytearray(ipv4_udp("10.1.0.10", payload=b"bad-csum" * 3))
    csum[24] ^= 0xFF  # IPv4 header checksum
    expired = ipv4_udp("10.2.200.1", ttl=1, payload=b"ttl-one" * 3)
    frames = [valid[0], arp_frame(), valid[1], bytes(ihl), valid[2], valid[3], bytes(csum), valid[4],
              expired, valid[5], valid[6], valid[7], valid[8]]  # fmt: skip
    cap = write_capture(tmp_path / "in.pcap", frames)
    out_pcap = tmp_path / "out.pcap"

    res = CliRunner().invoke(
        app,
        ["run", str(EXAMPLES / "router.py"), f"pcap={cap}", f"routes={routes_file}", f"out={out_pcap}",
         "--out", str(tmp_path / "res"), "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output

    # exactly the valid packets come out (order may change where branches merge), rewritten
    sent = {f[42:]: (TS0 + i * 1e-3, f) for i, f in enumerate(frames) if f in valid}  # by UDP payload
    got = read_capture(out_pcap)
    assert len(got) == len(valid)
    assert sorted(buf[42:] for _, buf in got) == sorted(sent)
    for ts, buf in got:
        eth = dpkt.ethernet.Ethernet(buf)
        ip, udp = eth.data, eth.data.data
        ts_in, orig = sent[udp.data]
        o_eth = dpkt.ethernet.Ethernet(orig)
        assert ts == pytest.approx(ts_in, abs=1e-6)  # capture timestamps are kept
        assert ip.ttl == o_eth.data.ttl - 1
        hop = next_hop(routes, socket.inet_ntoa(ip.dst))
        assert eth.dst == bytes([2, 0, 0, 0, 1, hop]) and eth.src == ROUTER_MAC
        assert dpkt.in_cksum(buf[14 : 14 + ip.hl * 4]) == 0  # header checksum valid
        assert udp.sum == o_eth.data.data.sum  # UDP checksum untouched (TTL is not in it)
        assert buf[34:] == orig[34:] and len(buf) == len(orig)

    c = counters(tmp_path / "res")
    assert c[("check", "drops.not_ipv4")] == 1
    assert c[("check", "drops.bad_ihl")] == 1
    assert c[("check", "drops.bad_checksum")] == 1
    assert c[("check", "drops")] == 3
    assert c[("lookup", "drops")] == 0
    expired_hop = next_hop(routes, "10.2.200.1")
    assert c[(f"ttl{expired_hop}", "drops.ttl_expired")] == 1
    assert sum(v for (m, k), v in c.items() if k == "drops.ttl_expired") == 1
    assert c[("output", "packets_in")] == len(valid)
    assert c[("measure", "packets_in")] == len(valid)
    hops = [next_hop(routes, socket.inet_ntoa(dpkt.ethernet.Ethernet(f).data.dst)) for f in valid + [expired]]
    for g in range(max(gate for _, gate in routes) + 1):
        assert c[("lookup", f"out.{g}")] == hops.count(g)
    s = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert s["packets"] == len(frames) and s["stop_reason"] == "input exhausted" and s["warnings"] == []


def test_router_needs_its_capture(tmp_path):
    res = CliRunner().invoke(app, ["run", str(EXAMPLES / "router.py"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert res.stderr.strip() == "error: router.py: missing required argument 'pcap' (give it as pcap=VALUE)"


def test_router_reports_a_bad_routes_file(tmp_path):
    cap = write_capture(tmp_path / "in.pcap", [ipv4_udp("10.1.0.1")])
    bad = tmp_path / "routes.txt"
    bad.write_text("10.0.0.0/8 0\n10.300.0.0/16 1\n")
    res = CliRunner().invoke(app, ["run", str(EXAMPLES / "router.py"), f"pcap={cap}", f"routes={bad}", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert err.startswith("error: ") and "router.py:" in err and f"{bad} line 2" in err and "\n" not in err


def test_pipeline_example_args_and_summary(tmp_path):
    res = CliRunner().invoke(
        app,
        ["run", str(EXAMPLES / "pipeline.py"), "seconds=0.02,rate_pps=200_000,flows=8", "size=128", "bulk_rate_pps=5000",
         "--clock", "virtual", "--out", str(tmp_path / "p"), "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert s["stop_reason"] == "time limit" and s["clock_ns"] >= 20_000_000
    assert 3900 <= s["packets"] <= 4001  # 0.02 s at 200 kpps
    mods = s["modules"]
    # the bulk branch offers ~10 % of 200 kpps = ~20 kpps to a 5 kpps policer with a 64-packet burst
    police = mods["police"]["counters"]
    assert police["packets_in"] == police["packets_out"] + police["drops.over_rate"]
    assert police["packets_out"] <= 64 + 5000 * 0.02 + 1
    assert police["drops.over_rate"] > 0
    assert mods["sink"]["counters"]["packets_in"] == s["measures"]["measure"]["all"]["packets"]
    assert len(s["measures"]["measure"]["flows"]) == 8
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    assert cfg["args"] == {"seconds": "0.02", "rate_pps": "200_000", "flows": "8", "size": "128", "bulk_rate_pps": "5000"}
    assert {m["name"]: m["class"] for m in cfg["modules"]}["vlan"] == "VLANPush"


def readme_example_commands() -> list[list[str]]:
    """The shell commands of README.md's "A real example" section, as words, ``.venv/bin/tailgate`` cut off."""
    text = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("## A real example", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == ".venv/bin/tailgate", line
            commands.append(words[1:])
    return commands


def test_readme_router_example_routes_over_every_next_hop(tmp_path, monkeypatch):
    commands = readme_example_commands()
    assert [c[:2] for c in commands] == [["pcap", "gen"], ["run", "examples/router.py"], ["pcap", "info"]]
    (tmp_path / "examples").symlink_to(EXAMPLES)  # the commands as written, from a fresh directory
    monkeypatch.chdir(tmp_path)
    for words in commands:
        res = CliRunner().invoke(app, words)
        assert res.exit_code == 0, (words, res.output)
    (res_dir,) = (tmp_path / "results").iterdir()
    c = counters(res_dir)
    n_hops = max(gate for _, gate in load_routes(EXAMPLES / "routes.txt")) + 1
    assert n_hops == 3
    for hop in range(n_hops):
        assert c[("lookup", f"out.{hop}")] > 0, f"next hop {hop} gets no packets"
        assert c[(f"mac{hop}", "packets_in")] > 0
    assert c[("output", "packets_in")] == c[("input", "packets_in")] == 100_000
