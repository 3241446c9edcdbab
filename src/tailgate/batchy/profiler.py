"""Batchy's module profiler: each network function's batch cost ``T(b) = T_0 + T_1·b`` on this machine.

Manual
------
What it measures
    For one network-function class, the wall-clock nanoseconds one ``process(batch)`` call takes
    on a batch of ``b`` packets, for ``b = 1 .. max_batch``, and the straight line through them:
    ``T_0`` (ns per batch, the part batching amortises) and ``T_1`` (ns per packet). Batchy uses
    the pair to decide which modules are worth a fractional buffer (batchiness
    ``β = T_1/(T_0+T_1) ≤ 0.5``, :mod:`tailgate.batchy.model`) and to estimate delays.

How
    Each class has a *fixture*: a realistic instance and the packets it is meant for, after the
    reference sheet's profiler (§4) where it has one — 60-byte IPv4/UDP frames, ExactMatch with
    1000 rules and 8 gates, IPv4Lookup with 15 000 random prefixes over 8 next hops and 16 flows
    that all hit routes, StaticNAT with 10 rules, an ACL of 700 ClassBench-like rules that every
    packet walks (its flow's rule sits at a random depth), splits with 8 gates, Bypass spinning
    10 000 cycles (4 µs at 2.5 cycles/ns) per batch (:data:`FIXTURES`, :func:`fixture`).

    The module runs unwired, outside any pipeline (as :func:`tailgate.dataplane.drive.drive` does) on a
    wall clock. Every sample builds a fresh batch of ``b`` packets from the fixture's frames
    (untimed: modules such as DecTTL change packets in place, encapsulations move them), times
    ``module.process(batch)`` alone with ``time.perf_counter_ns``, then frees whatever the module
    emitted (untimed). Headers are not pre-parsed, so the cost includes parsing the batch, as for
    every module that receives a fragment after a split or a buffer (``parsed=True`` parses
    first, untimed: the cost behind a module that passed the batch on whole; the parse is
    ~1 µs of a simple module's ~1.6 µs on a 2-vCPU VM).

    Samples come in *rounds*: one sample of every batch size, in a fresh random order, so that a
    slow patch of the machine hits all sizes alike. A few rounds run untimed first (numba
    kernels loaded, caches warm, a NAT's mappings made); then rounds go on until the module's
    time budget is spent (at least ``min_reps``, at most ``max_reps``), the garbage collector off.
    Per batch size the statistic is the **median** over the rounds. The same batch is first
    handed to an empty pass-through module (it only emits the batch); the median of those calls
    — timer reads, a method call and an emit — is subtracted, so the fit is the module's own cost
    (the original profiler's fit included its Timestamp/BatchMeasure modules; §17). Then a least
    squares fit of ``T(b)`` with ``T_0, T_1 ≥ 0`` (the best line on the boundary when the free
    fit has a negative coefficient), and its R² over the points.

    The default profile of every fixture takes about 20 s on a 2-vCPU VM (at most ``budget_s``
    per module; most reach ``max_reps`` first), not the original's hour: a call costs
    microseconds, so a thousand samples per point take well under a second. Other load on the
    machine shows up as noise (and a low R²); profile a quiet machine, and note that virtual CPUs
    distort results (§18). R² is low where the line is a poor model, not only where the
    machine is noisy: a split that sends a batch to ``g`` gates pays per emitted fragment, so its
    cost grows with ``min(b, gates)`` and then flattens; a module with a negligible ``T_1``
    scatters around a flat line.

    What to expect: in tailgate a call's fixed cost (Python dispatch, numpy calls of ~1 µs each,
    the header parse) dwarfs the per-packet work of a numba kernel, so ``T_0 ≫ T_1`` and nearly
    every module comes out controllable (β ≪ 0.5), unlike BESS, where an ACL's per-packet walk
    dominated (reference §4).

The file
    JSON, one object keyed by class name (the original's ``profiler_results.json`` shape, which
    it also reads)::

        {"ACL": {"T_0": 4990.9, "T_1": 493.1, "r2": 0.9998, "stat": "median",
                 "points": [[1, 5494.5], [2, 5907.5], ...],   # [b, ns], the overhead taken off
                 "batches": [1000, 1000, ...],                # timed calls behind each point
                 "overhead_ns": 269.0, "max_batch": 32, "headers": "fresh",
                 "fixture": "700 ClassBench-like rules, ...", "when": "2025-...", "host": "..."},
         ...}

    Only ``T_0`` and ``T_1`` (ns, ≥ 0) are required of an entry. It lives at
    ``$TAILGATE_PROFILE`` if that is set, else ``~/.cache/tailgate/profile.json``
    (:func:`profile_path`). A new profile merges into the file: the classes profiled are
    replaced, the others kept. The file is written whole, atomically.

How runs use it
    ``tailgate profile [MODULE ...]`` (or :func:`profile`) writes it. A Batchy run on the wall
    clock takes each module's ``T_0``/``T_1`` from ``add_module(..., T_0=, T_1=)``, else from this
    file by class name (:func:`load_profile`, :func:`module_cost`), else from the class's nominal
    ``cost_ns`` (:mod:`tailgate.batchy.runner`; a Bypass costs its own ``t0_ns``/``t1_ns``). Under the virtual clock the model costs are used
    as given, and nothing is measured.

Example::

    from tailgate.batchy import profiler
    new = profiler.profile(["IPv4Lookup", "DecTTL"], max_batch=32)
    profiler.module_cost("IPv4Lookup", profiler.load_profile())   # -> (T_0, T_1)
"""

from __future__ import annotations

import gc
import ipaddress
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numba import njit

import tailgate.nf as nf
from tailgate.core.clock import WallClock
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
from tailgate.packet.pool import Batch, PacketPool
from tailgate.packet.synth import FlowTemplate, TrafficGen

__all__ = [
    "FIXTURES",
    "Fixture",
    "fixture",
    "known_modules",
    "load_profile",
    "module_cost",
    "profile",
    "profile_module",
    "profile_path",
    "resolve_modules",
]

ENV_VAR = "TAILGATE_PROFILE"
MAX_BATCH_LIMIT = 1024
DEFAULT_BUDGET_S = 2.5
#: size of the frames the fixtures send (60 bytes, as the original profiler: a 64-byte wire frame)
FRAME_BYTES = 60
#: cycles per ns the reference configs assume (BYPASS_RATIO)
BYPASS_RATIO = 2.5


# ================================================================================================
# the file
# ================================================================================================
def profile_path() -> Path:
    """``$TAILGATE_PROFILE`` if set (and not empty), else ``~/.cache/tailgate/profile.json``."""
    p = os.environ.get(ENV_VAR)
    if p:
        return Path(p).expanduser()
    return Path.home() / ".cache" / "tailgate" / "profile.json"


def load_profile(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """The profile at ``path`` (default :func:`profile_path`) as ``{class name: entry}``.

    ``{}`` when the file does not exist. A file that is not JSON, or not an object of entries
    each holding non-negative numbers ``T_0`` and ``T_1``, is an ArgError naming the file.
    """
    p = Path(path) if path is not None else profile_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ArgError(f"{p}: cannot read the module profile: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ArgError(f"{p}: the module profile is not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise ArgError(f"{p}: the module profile must be a JSON object {{class name: {{T_0, T_1, ...}}}}, "
                       f"got {type(data).__name__}")
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise ArgError(f"{p}: entry {name!r} must be an object with T_0 and T_1, got {type(entry).__name__}")
        for k in ("T_0", "T_1"):
            v = entry.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ArgError(f"{p}: entry {name!r}: {k} must be a non-negative number of ns, got {v!r}")
    return data


def module_cost(class_name: str, profile: dict) -> tuple[float, float] | None:
    """``(T_0, T_1)`` in ns for ``class_name`` from a loaded profile, or None if it has none."""
    entry = profile.get(class_name) if isinstance(profile, dict) else None
    if not isinstance(entry, dict):
        return None
    try:
        t0, t1 = float(entry["T_0"]), float(entry["T_1"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(t0) and math.isfinite(t1)) or t0 < 0 or t1 < 0:
        return None
    return t0, t1


def _write_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ================================================================================================
# fixtures: a realistic instance per class, and the frames it is meant for
# ================================================================================================
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


def _resolve(name: str) -> str:
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
        r = _resolve(n)
        if r not in out:
            out.append(r)
    return out


def fixture(class_name: str, seed: int = 0, **args: Any) -> Fixture:
    """A fresh, unwired fixture of ``class_name``; ``args`` override the fixture's module arguments
    (e.g. ``fixture("Bypass", t0_ns=2000, t1_ns=100)``)."""
    name = _resolve(class_name)
    rng = np.random.default_rng(seed)
    with Pipeline():  # modules join a pipeline when made: keep the fixture out of the default one
        module, (frames, lengths), desc = FIXTURES[name](rng, args)
    return Fixture(module=module, frames=frames, lengths=lengths, description=desc)


# ================================================================================================
# measurement
# ================================================================================================
class _PassThrough(Module):
    """The empty module whose call is the measurement overhead: it only emits the batch."""

    def process(self, batch) -> None:
        self.emit(batch)


@njit(cache=True)
def _fill(data, offset, length, wire_len, idx, frames, lens, start):
    """Copy template frames ``start, start+1, ...`` (round-robin) into the slots ``idx``."""
    n_t = frames.shape[0]
    for k in range(idx.shape[0]):
        s = idx[k]
        t = (start + k) % n_t
        o = offset[s]
        n = lens[t]
        for j in range(n):
            data[s, o + j] = frames[t, j]
        length[s] = n
        wire_len[s] = n


def _check_max_batch(max_batch) -> int:
    if isinstance(max_batch, bool) or not isinstance(max_batch, (int, np.integer)) or not 2 <= max_batch <= MAX_BATCH_LIMIT:
        raise ArgError(f"max_batch must be an integer in 2..{MAX_BATCH_LIMIT}, got {max_batch!r}")
    return int(max_batch)


def fit_linear(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares ``y = T_0 + T_1·b`` with ``T_0, T_1 ≥ 0``: ``(T_0, T_1, R²)``.

    When the free fit has a negative coefficient the best line on that boundary is taken (a flat
    line at the mean, or a line through the origin). R² is that line's, over the points, floored
    at 0 (a module that costs nothing measurable scatters around 0 and explains nothing)."""
    b = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    cands = []
    A = np.stack([np.ones_like(b), b], axis=1)
    (t0, t1), *_ = np.linalg.lstsq(A, y, rcond=None)
    if t0 >= 0 and t1 >= 0:
        cands.append((t0, t1))
    else:
        cands.append((max(float(y.mean()), 0.0), 0.0))
        cands.append((0.0, max(float(b @ y) / float(b @ b), 0.0)))
    best = min(cands, key=lambda c: float(((y - c[0] - c[1] * b) ** 2).sum()))
    ss_res = float(((y - best[0] - best[1] * b) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = (1.0 if ss_res <= 1e-12 else 0.0) if ss_tot <= 1e-12 else 1.0 - ss_res / ss_tot
    return float(best[0]), float(best[1]), max(r2, 0.0)


def profile_module(
    class_name: str,
    max_batch: int = 32,
    reps: int | None = None,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    min_reps: int = 15,
    max_reps: int = 1000,
    warmup_rounds: int = 5,
    seed: int = 0,
    args: dict | None = None,
    parsed: bool = False,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Profile one class (see the module manual); returns its profile entry.

    ``reps`` fixes the number of timed rounds (one sample of every batch size each); without it
    rounds go on until ``budget_s`` seconds of measuring are spent, at least ``min_reps`` and at
    most ``max_reps`` of them. ``args`` override the fixture's module arguments. ``parsed=True``
    parses each batch's headers before timing (untimed), for the cost of a module that receives a
    batch an earlier module parsed; the default times the parse too. ``progress`` is called with
    the fraction of this module done (0..1).
    """
    max_batch = _check_max_batch(max_batch)
    if reps is not None and (isinstance(reps, bool) or not isinstance(reps, int) or reps < 1):
        raise ArgError(f"reps must be a positive integer, got {reps!r}")
    name = _resolve(class_name)
    fx = fixture(name, seed=seed, **(args or {}))
    m = fx.module
    with Pipeline():
        base = _PassThrough(name="overhead")
    pool = PacketPool(n_slots=max(4096, 4 * max_batch))
    clock = WallClock()
    for mod in (m, base):
        mod.pool, mod.clock, mod.runtime = pool, clock, None
        mod.current_igate = fx.igate
        mod._out.clear()
    frames = np.ascontiguousarray(fx.frames)
    lens = np.ascontiguousarray(fx.lengths, dtype=np.int32)
    n_t = len(lens)
    sizes = np.arange(1, max_batch + 1)
    data, offset, length, wire_len = pool.data, pool.offset, pool.length, pool.wire_len
    clock_ns = time.perf_counter_ns
    rng = np.random.default_rng(seed + 1)
    cursor = 0

    def one_round(t_mod: list[list[int]] | None, t_base: list[int] | None) -> None:
        nonlocal cursor
        for b in rng.permutation(sizes).tolist():
            idx = pool.alloc_idx(b)
            _fill(data, offset, length, wire_len, idx, frames, lens, cursor)
            cursor = (cursor + b) % n_t
            batch = Batch(pool, idx)
            if parsed:
                batch.headers
            s0 = clock_ns()
            base.process(batch)
            s1 = clock_ns()
            base._out.clear()
            s2 = clock_ns()
            m.process(batch)
            s3 = clock_ns()
            for _, out in m._out:
                out.free()
            m._out.clear()
            if t_mod is not None:
                t_mod[b - 1].append(s3 - s2)
                t_base.append(s1 - s0)

    target = reps if reps is not None else max_reps
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(warmup_rounds):
            one_round(None, None)
        t_mod: list[list[int]] = [[] for _ in sizes]
        t_base: list[int] = []
        start = time.perf_counter()
        done = 0
        last_report = 0.0
        while done < target:
            one_round(t_mod, t_base)
            done += 1
            if reps is None:
                elapsed = time.perf_counter() - start
                if done >= min_reps and elapsed >= budget_s:
                    break
                frac = max(elapsed / budget_s, done / target) if budget_s > 0 else done / target
            else:
                frac = done / target
            if progress is not None and frac - last_report >= 0.02:
                last_report = frac
                progress(min(frac, 1.0))
    finally:
        if gc_was:
            gc.enable()
        if pool.n_used:  # a module that keeps packets (none of the fixtures): give them back
            for mod in (m, base):
                for _, out in mod._out:
                    out.free()
                mod._out.clear()
    m.finish()
    overhead = float(np.median(t_base))
    points = [(int(b), float(np.median(t_mod[b - 1])) - overhead) for b in sizes.tolist()]
    t0, t1, r2 = fit_linear(points)
    if progress is not None:
        progress(1.0)
    return {
        "T_0": round(t0, 2),
        "T_1": round(t1, 3),
        "r2": round(r2, 4),
        "stat": "median",
        "points": [[b, round(y, 1)] for b, y in points],
        "batches": [len(t) for t in t_mod],
        "overhead_ns": round(overhead, 1),
        "max_batch": max_batch,
        "fixture": fx.description,
        "headers": "parsed" if parsed else "fresh",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
    }


def profile(
    modules: list[str] | None = None,
    max_batch: int = 32,
    out: str | os.PathLike | None = None,
    progress: Callable[[int, int, str, float], None] | None = None,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    reps: int | None = None,
) -> dict[str, dict]:
    """Profile ``modules`` (class names; default every fixture), merge the entries into the
    profile file ``out`` (default :func:`profile_path`), write it, and return the new entries.

    ``progress(i, n, name, fraction)`` is called as module ``i`` of ``n`` goes. Unknown names are
    an ArgError listing the known ones; so is an existing profile file that cannot be read (it is
    left as it is), checked before anything is measured.
    """
    max_batch = _check_max_batch(max_batch)
    if not (isinstance(budget_s, (int, float)) and math.isfinite(budget_s) and budget_s > 0):
        raise ArgError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    names = resolve_modules(modules)
    path = Path(out).expanduser() if out is not None else profile_path()
    load_profile(path)  # a damaged file stops us before minutes of measuring, not after
    new: dict[str, dict] = {}
    for i, name in enumerate(names):
        if progress is not None:
            progress(i, len(names), name, 0.0)
        cb = (lambda f, i=i, name=name: progress(i, len(names), name, f)) if progress is not None else None
        new[name] = profile_module(name, max_batch, reps, budget_s=budget_s, progress=cb)
    merged = {**load_profile(path), **new}  # read again: keep entries written meanwhile
    _write_atomic(path, merged)
    return new
