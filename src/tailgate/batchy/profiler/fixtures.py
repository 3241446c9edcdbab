"""Profiler fixtures: per network-function class, a realistic instance and the frames it is meant for.

Manual
------
The profiler (:mod:`tailgate.batchy.profiler.harness`) times a module on the traffic its fixture
gives. The fixtures follow the reference sheet's profiler (§4) where it has one: 60-byte IPv4/UDP
frames (:data:`FRAME_BYTES`), ExactMatch with 1000 rules and 8 gates, IPv4Lookup with 15 000
random prefixes over 8 next hops and 16 flows that all hit routes, StaticNAT with 10 rules, an
ACL of 700 ClassBench-like rules that every packet walks (its flow's rule sits at a random depth),
splits with 8 gates, Bypass spinning 10 000 cycles (4 µs at 2.5 cycles/ns,
:data:`tailgate.batchy.model.BYPASS_RATIO`) per batch. Decapsulations get frames encapsulated by
their encapsulation module first.

Not profiled: sources, sinks, queues, pcap I/O and Measure (Batchy counts those as 0).

- :data:`FIXTURES` maps a class name to its builder ``(rng, overrides) -> (module, (frames,
  lengths), description)``;
- :func:`fixture` builds one, unwired and outside the default pipeline, from a seed: the same
  seed gives the same rules and frames;
- :func:`known_modules` lists the classes; :func:`resolve_module` / :func:`resolve_modules` turn
  names given on the command line (case-insensitive) into class names, or an ArgError listing the
  known ones.

Example::

    fx = fixture("IPv4Lookup", seed=0)
    fx.module, len(fx.lengths), fx.description   # IPv4Lookup(profiled), 256, "15000 random prefixes, ..."
    fixture("Bypass", t0_ns=2000, t1_ns=100)     # overrides reach the module's arguments
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import tailgate.nf as nf
from tailgate.batchy.model import BYPASS_RATIO
from tailgate.core.errors import ArgError
from tailgate.dataplane.drive import drive
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.module import Module
from tailgate.nf import (
    ACL,
    NAPT,
    Bypass,
    ExactMatch,
    GTPUDecap,
    GTPUEncap,
    IPv4Lookup,
    IPv6Lookup,
    StaticNAT,
    VLANPop,
    VLANSplit,
    VXLANDecap,
    VXLANEncap,
)
from tailgate.packet.pool import PacketPool
from tailgate.packet.synth import FlowTemplate, TrafficGen

#: size of the frames the fixtures send (60 bytes, as the original profiler: a 64-byte wire frame)
FRAME_BYTES = 60


@dataclass
class Fixture:
    """A module to profile and its traffic: ``frames[k, :lengths[k]]`` are the template frames,
    used round-robin; ``igate`` is the input gate they arrive on."""

    module: Module
    frames: np.ndarray  # (n, max_len) uint8
    lengths: np.ndarray  # (n,) int32
    description: str
    igate: int = 0


def _flow(src: str, dst: str, sport: int = 1024, dport: int = 5001, **kw) -> FlowTemplate:
    kw.setdefault("size_bytes", FRAME_BYTES)
    return FlowTemplate(src_ip=src, dst_ip=dst, sport=sport, dport=dport, **kw)


def _random_flows(n: int, rng, dsts: list[str] | None = None, **kw) -> list[FlowTemplate]:
    """``n`` UDP flows from 10.0.0.0/8 to ``dsts`` (else to random 10/8 hosts)."""
    out = []
    for k in range(n):
        src = str(ipaddress.IPv4Address((10 << 24) | int(rng.integers(1, 1 << 24))))
        dst = dsts[k % len(dsts)] if dsts else str(ipaddress.IPv4Address((10 << 24) | int(rng.integers(1, 1 << 24))))
        out.append(_flow(src, dst, int(rng.integers(1024, 65536)), int(rng.integers(1, 65536)), **kw))
    return out


def _frames(flows: list[FlowTemplate], n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames of the flows, in a seeded random flow order (valid checksums)."""
    pool = PacketPool(n_slots=n)
    return _pack(TrafficGen(flows, seed=seed).generate(pool, n).frames())


def _pack(frames: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    lens = np.array([len(f) for f in frames], dtype=np.int32)
    arr = np.zeros((len(frames), int(lens.max())), dtype=np.uint8)
    for k, f in enumerate(frames):
        arr[k, : len(f)] = np.frombuffer(f, dtype=np.uint8)
    return arr, lens


def _through(module: Module, frames: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frames after ``module`` (e.g. encapsulated), for a decap fixture."""

    out, _ = drive(module, [frames[k, : lengths[k]].tobytes() for k in range(len(lengths))])
    return _pack(out[0])


def _rand_prefix_v4(rng, length: int, avoid_10: bool = False) -> int:
    while True:
        a = int(rng.integers(1 << 24, 224 << 24))  # unicast space
        if not (avoid_10 and a >> 24 == 10):
            return a & ((0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF)


def _host_in(prefix: int, length: int, rng) -> str:
    host_bits = 32 - length
    h = int(rng.integers(1, 1 << host_bits)) if host_bits >= 1 else 0
    return str(ipaddress.IPv4Address(prefix | h))


# Prefix lengths of a BGP-like table: mostly /24, then /16-/23, a few short and long ones.
_V4_LENS = np.array([8, 12, 16, 18, 19, 20, 21, 22, 23, 24, 26, 28, 32])
_V4_LEN_P = np.array([0.5, 1, 4, 2, 4, 4, 5, 9, 8, 57, 2, 1.5, 2])


def _fx_ipv4lookup(rng, kw):
    n_routes, n_hops, n_flows = 15000, 8, 16
    lens = rng.choice(_V4_LENS, size=n_routes, p=_V4_LEN_P / _V4_LEN_P.sum())
    routes = []
    for ln in lens.tolist():
        routes.append((_rand_prefix_v4(rng, ln), ln, int(rng.integers(0, n_hops))))
    picks = rng.choice(n_routes, size=n_flows, replace=False)
    dsts = [_host_in(routes[i][0], routes[i][1], rng) for i in picks.tolist()]
    items = [(f"{ipaddress.IPv4Address(p)}/{ln}", g) for p, ln, g in routes]

    m = IPv4Lookup(name="profiled", **{"routes_list": items, "gates": n_hops, **kw})
    return m, _frames(_random_flows(n_flows, rng, dsts)), f"{n_routes} random prefixes, {n_hops} next hops, {n_flows} flows"


def _fx_ipv6lookup(rng, kw):
    n_routes, n_hops, n_flows = 15000, 8, 16
    lens = rng.choice([32, 40, 44, 48, 56, 64], size=n_routes, p=[0.1, 0.1, 0.1, 0.5, 0.1, 0.1])
    routes = []
    for ln in lens.tolist():
        a = (0x2 << 124) | (int.from_bytes(rng.bytes(16), "big") >> 4)  # 2000::/3
        routes.append((a & (((1 << 128) - 1) ^ ((1 << (128 - ln)) - 1)), ln, int(rng.integers(0, n_hops))))
    picks = rng.choice(n_routes, size=n_flows, replace=False).tolist()
    flows = []
    for i in picks:
        p, ln, _ = routes[i]
        dst = p | (int.from_bytes(rng.bytes(16), "big") & ((1 << (128 - ln)) - 1))
        flows.append(_flow(f"fd00::{i + 1:x}", str(ipaddress.IPv6Address(dst)), 1024 + i, 5001, size_bytes=78))
    items = [(f"{ipaddress.IPv6Address(p)}/{ln}", g) for p, ln, g in routes]

    m = IPv6Lookup(name="profiled", **{"routes_list": items, "gates": n_hops, **kw})
    return m, _frames(flows), f"{n_routes} random IPv6 prefixes, {n_hops} next hops, {n_flows} flows, 78-byte frames"


def _fx_exactmatch(rng, kw):
    n_rules, n_gates, n_flows = 1000, 8, 16
    keys = rng.choice(1 << 24, size=n_rules, replace=False)
    addrs = [str(ipaddress.IPv4Address((10 << 24) | int(k))) for k in keys]
    rules = {a: i % n_gates for i, a in enumerate(addrs)}
    dsts = [addrs[i] for i in rng.choice(n_rules, size=n_flows, replace=False).tolist()]

    m = ExactMatch(name="profiled", **{"field": "ipv4.dst", "rules": rules, "gates": n_gates, **kw})
    return m, _frames(_random_flows(n_flows, rng, dsts)), f"ipv4.dst, {n_rules} rules, {n_gates} gates, {n_flows} flows"


def _acl_rule(rng) -> dict:
    """A ClassBench-like rule that 10.0.0.0/8 sources never match (its source, or its destination
    when the source is a wildcard, lies outside 10/8)."""
    def pfx():
        ln = int(rng.choice([8, 16, 20, 24, 28, 32], p=[0.05, 0.2, 0.15, 0.3, 0.1, 0.2]))
        return f"{ipaddress.IPv4Address(_rand_prefix_v4(rng, ln, avoid_10=True))}/{ln}"

    def ports():
        r = rng.random()
        if r < 0.5:
            return "*"
        if r < 0.8:
            return str(int(rng.integers(1, 65536)))
        lo = int(rng.integers(0, 60000))
        return f"{lo}-{lo + int(rng.integers(1, 5000))}"

    src = "*" if rng.random() < 0.2 else pfx()
    return {"src": src, "dst": pfx() if src == "*" or rng.random() < 0.7 else "*",
            "proto": str(rng.choice(["udp", "tcp", "*"], p=[0.45, 0.45, 0.1])),
            "sport": ports(), "dport": ports(), "action": "accept" if rng.random() < 0.7 else "drop"}


def _fx_acl(rng, kw):
    n_rules, n_flows = 700, 16
    flows = _random_flows(n_flows, rng)
    rules = [_acl_rule(rng) for _ in range(n_rules - n_flows)]
    # each flow's own rule at a random depth: every packet walks part of the list
    for f in flows:
        r = {"src": f"{f.src_ip}/32", "dst": f"{f.dst_ip}/32", "proto": "udp", "sport": str(f.sport),
             "dport": str(f.dport), "action": "accept"}
        rules.insert(int(rng.integers(0, len(rules) + 1)), r)

    m = ACL(name="profiled", **{"rules": rules, "default_action": "drop", **kw})
    return m, _frames(flows), f"{n_rules} ClassBench-like rules, {n_flows} flows matched at random depths"


def _fx_staticnat(rng, kw):
    n_rules, n_flows = 10, 16
    inside = [f"10.0.0.{i + 1}" for i in range(n_rules)]
    rules = [(a, f"198.18.0.{i + 1}") for i, a in enumerate(inside)]
    flows = [_flow(inside[k % n_rules], f"203.0.113.{k + 1}", 1024 + k, 5001) for k in range(n_flows)]

    m = StaticNAT(name="profiled", **{"rules": rules, **kw})
    return m, _frames(flows), f"{n_rules} rules, {n_flows} flows, all translated"


def _fx_napt(rng, kw):
    m = NAPT(name="profiled", **{"external_ip": "198.18.0.1", **kw})
    return m, _frames(_random_flows(16, rng)), "16 outbound UDP flows (mappings made while warming up)"


def _simple(cls_name: str, description: str, **args):
    """A fixture of one class with fixed arguments, on 16 random 60-byte IPv4/UDP flows."""

    def build(rng, kw):
        m = getattr(nf, cls_name)(name="profiled", **{**args, **kw})
        return m, _frames(_random_flows(16, rng)), description

    return build


def _fx_vlanpop(rng, kw):
    flows = _random_flows(16, rng, vlan=100, size_bytes=FRAME_BYTES + 4)
    return VLANPop(name="profiled", **kw), _frames(flows), "16 flows tagged with VLAN 100, 64-byte frames"


def _fx_vlansplit(rng, kw):
    vids = [10 * (k + 1) for k in range(8)]
    flows = []
    for k in range(16):
        flows += _random_flows(1, rng, vlan=vids[k % 8], size_bytes=FRAME_BYTES + 4)
    m = VLANSplit(name="profiled", **{"vids": vids, **kw})
    return m, _frames(flows), "8 VLAN ids (+ unmatched gate), 16 tagged flows, 64-byte frames"


def _fx_vxlandecap(rng, kw):
    with Pipeline():
        enc = VXLANEncap(name="encap", src_ip="192.0.2.1", dst_ip="192.0.2.2", vni=5001)
    frames = _through(enc, *_frames(_random_flows(16, rng)))
    return VXLANDecap(name="profiled", **kw), frames, "16 flows in VXLAN (VNI 5001), 110-byte frames"


def _fx_gtpudecap(rng, kw):
    with Pipeline():
        enc = GTPUEncap(name="encap", src_ip="192.0.2.1", dst_ip="192.0.2.2", teid=0x1234)
    frames = _through(enc, *_frames(_random_flows(16, rng)))
    return GTPUDecap(name="profiled", **kw), frames, "16 flows in GTP-U (TEID 0x1234)"


def _fx_bypass(rng, kw):
    args = {"t0_ns": 10_000 / BYPASS_RATIO, "t1_ns": 0.0, **kw}
    m = Bypass(name="profiled", **args)
    return m, _frames(_random_flows(16, rng)), f"spins t0_ns={args['t0_ns']:g} per batch, t1_ns={args['t1_ns']:g} per packet"


#: class name -> builder ``(rng, overrides) -> (module, (frames, lengths), description)``.
#: Not profiled: sources, sinks, queues, pcap I/O and Measure (Batchy counts those as 0).
FIXTURES: dict[str, Callable] = {
    "ACL": _fx_acl,
    "Bypass": _fx_bypass,
    "CheckIPHeader": _simple("CheckIPHeader", "header and checksum checks, all pass"),
    "DecTTL": _simple("DecTTL", "TTL 64, incremental checksum"),
    "ExactMatch": _fx_exactmatch,
    "GTPUDecap": _fx_gtpudecap,
    "GTPUEncap": _simple("GTPUEncap", "TEID 0x1234", src_ip="192.0.2.1", dst_ip="192.0.2.2", teid=0x1234),
    "HashSplit": _simple("HashSplit", "8 gates, 16 flows", gates=8),
    "IPChecksum": _simple("IPChecksum", "IPv4 header checksum"),
    "IPv4Lookup": _fx_ipv4lookup,
    "IPv6Lookup": _fx_ipv6lookup,
    "MACRewrite": _simple("MACRewrite", "both addresses", src="02:00:00:00:00:01", dst="02:00:00:00:00:fe"),
    "Merge": _simple("Merge", "2 inputs, packets on input 0"),
    "NAPT": _fx_napt,
    "RandomSplit": _simple("RandomSplit", "8 gates", gates=8),
    "RateLimiter": _simple("RateLimiter", "1e12 pps: every packet conforms", rate_pps=1e12, burst_packets=1e9),
    "SetIPv4": _simple("SetIPv4", "dst := 192.0.2.7", field="dst", value="192.0.2.7"),
    "SetMetadata": _simple("SetMetadata", "flow_id := 7", field="flow_id", value=7),
    "StaticNAT": _fx_staticnat,
    "Timestamp": _simple("Timestamp", "annotation 0 := clock"),
    "UpdateTTL": _simple("UpdateTTL", "TTL := 32", ttl=32),
    "VLANPop": _fx_vlanpop,
    "VLANPush": _simple("VLANPush", "VID 100", vid=100),
    "VLANSplit": _fx_vlansplit,
    "VXLANDecap": _fx_vxlandecap,
    "VXLANEncap": _simple("VXLANEncap", "VNI 5001", src_ip="192.0.2.1", dst_ip="192.0.2.2", vni=5001),
    "WeightedRandomSplit": _simple("WeightedRandomSplit", "8 gates, weights 1..8", weights=[1, 2, 3, 4, 5, 6, 7, 8]),
}


def known_modules() -> list[str]:
    """The class names that have a fixture, sorted."""
    return sorted(FIXTURES)


def resolve_module(name: str) -> str:
    """The class name with a fixture that ``name`` means (case-insensitive); ArgError if none."""
    if name in FIXTURES:
        return name
    by_lower = {k.lower(): k for k in FIXTURES}
    if isinstance(name, str) and name.lower() in by_lower:
        return by_lower[name.lower()]
    raise ArgError(f"no profiler fixture for module {name!r}; known: {', '.join(known_modules())}")


def resolve_modules(names: list[str] | None) -> list[str]:
    """The class names to profile: ``names`` (case-insensitive, duplicates dropped, order kept), or
    every fixture when empty. An unknown name is an ArgError listing the known ones."""
    out: list[str] = []
    for n in (known_modules() if not names else names):
        r = resolve_module(n)
        if r not in out:
            out.append(r)
    return out


def fixture(class_name: str, seed: int = 0, **args: Any) -> Fixture:
    """A fresh, unwired fixture of ``class_name``; ``args`` override the fixture's module arguments
    (e.g. ``fixture("Bypass", t0_ns=2000, t1_ns=100)``)."""
    name = resolve_module(class_name)
    rng = np.random.default_rng(seed)
    with Pipeline():  # modules join a pipeline when made: keep the fixture out of the default one
        module, (frames, lengths), desc = FIXTURES[name](rng, args)
    return Fixture(module=module, frames=frames, lengths=lengths, description=desc)
