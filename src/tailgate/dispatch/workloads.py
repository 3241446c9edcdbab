"""Typed request workloads: request types with service times and shares, by name.

Manual
------
A :class:`Workload` is a list of :class:`RequestType` (name, numeric type id, mean service time in
ns, share of requests). Its mean service time is ``S = Σ service_ns · ratio``, so ``n_workers``
workers saturate at ``n_workers / S`` requests per ns; :meth:`Workload.rate_rps` turns a load
(a fraction of that) into an offered rate.

Named workloads (``get_workload(name)``), from the Perséphone reference sheet:

=========  =================================================================  ==========
name       types (service time, share)                                        S
=========  =================================================================  ==========
disp2      High Bimodal: SHORT 1 µs 50 % / LONG 100 µs 50 %                   50.5 µs
sbim2      Extreme Bimodal: SHORT 0.5 µs 99.5 % / LONG 500 µs 0.5 %           2.9975 µs
disp3      SHORT 1 µs 95 % / LONG 100 µs 5 %                                  5.95 µs
tpcc       NewOrder 20 µs 44 %, Payment 5.7 µs 44 %, Delivery 88 µs 4 %,      19.068 µs
           OrderStatus 6 µs 4 %, StockLevel 100 µs 4 %
rocksdb    GET 1.5 µs 50 % / SCAN 635 µs 50 %                                 318.25 µs
=========  =================================================================  ==========

Type ids follow the artifact's wire format (SHORT 1, LONG 2, NEW_ORDER 5 ... GET 10, SCAN 11);
0 is UNKNOWN. ``PHASED`` lists the phase-changing schedule (four phases at 80 % load, the first
with the SHORT/LONG labels inverted on purpose).

Service-time distributions
--------------------------
``service_ns`` is a type's *nominal* service time: the mean used for the offered rate, for DARC's
declared demand and as the divisor of slowdown. ``RequestType.dist`` says how a request's actual
service time is drawn around it (:meth:`RequestType.sample_ns`, always whole ns, at least 1):

============  ===================================================================================
``fixed``     always ``service_ns`` (the default: the artifact's workers spin a fixed time)
``exp``       exponential with mean ``service_ns``
``lognormal`` lognormal with mean ``service_ns`` and shape ``sigma`` (the log's standard
              deviation; the log's mean is ``ln(service_ns) - sigma²/2`` so the mean holds)
``empirical`` one of ``samples_ns``, picked uniformly; their mean must be within 1 % of
              ``service_ns`` (:meth:`RequestType.empirical` computes it for you)
============  ===================================================================================

Workload files
--------------
:func:`load_workload` reads a user workload from YAML, and :func:`get_workload` does too for any
name ending in ``.yaml`` or ``.yml``::

    name: mybimodal                  # optional; the file's stem otherwise
    types:
      - {name: SHORT, id: 1, service_us: 1, ratio: 0.9}
      - {name: LONG, id: 2, service_ns: 100000, ratio: 0.1, dist: lognormal, sigma: 1.0}
      - {name: SCAN, id: 11, ratio: 0.0, dist: empirical, samples_us: [500, 600, 800]}

Each type needs ``name``, ``id`` (1..255), ``ratio`` and exactly one of ``service_us`` /
``service_ns`` (an ``empirical`` type may leave it out: the samples' mean is used). ``dist`` is
optional; ``sigma`` belongs to ``lognormal`` only and ``samples_us`` / ``samples_ns`` to
``empirical`` only. Ratios must add up to 1. Anything else (a missing or unknown field, a time
that is not > 0, an unknown distribution, a duplicate id, a file that is not YAML or not there)
raises one :class:`~tailgate.core.errors.ArgError` that names the file and the type and field.
``examples/sched/bimodal.yaml`` is a worked file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tailgate.core.errors import ArgError

UNKNOWN, SHORT, LONG, PAGE, REGEX = 0, 1, 2, 3, 4
NEW_ORDER, PAYMENT, DELIVERY, ORDER_STATUS, STOCK_LEVEL = 5, 6, 7, 8, 9
GET, SCAN = 10, 11


#: The service-time distributions a :class:`RequestType` may draw from.
DISTS = ("fixed", "exp", "lognormal", "empirical")

#: How far an empirical type's samples' mean may stray from its nominal ``service_ns``
#: (a file may state the mean rounded).
EMPIRICAL_MEAN_TOLERANCE = 0.01


@dataclass(frozen=True)
class RequestType:
    name: str
    type_id: int
    service_ns: float                       # nominal (mean) service time
    ratio: float                            # share of requests
    dist: str = "fixed"                     # one of DISTS
    sigma: float = 0.0                      # lognormal shape (the log's standard deviation)
    samples_ns: tuple[float, ...] = ()      # empirical: the values drawn from

    @classmethod
    def empirical(cls, name: str, type_id: int, samples_ns: Sequence[float], ratio: float) -> RequestType:
        """An ``empirical`` type whose nominal service time is its samples' mean."""
        samples = tuple(float(x) for x in samples_ns)
        mean = sum(samples) / len(samples) if samples else 0.0
        return cls(name, type_id, mean, ratio, "empirical", 0.0, samples)

    def sample_ns(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` service times (int64 ns, each >= 1) drawn from this type's distribution."""
        if self.dist == "fixed":
            drawn = np.full(n, float(self.service_ns))
        elif self.dist == "exp":
            drawn = rng.exponential(self.service_ns, n)
        elif self.dist == "lognormal":
            # numpy's parameters are the log's mean and deviation; shift the log's mean so that
            # the distribution's own mean is the nominal service time.
            drawn = rng.lognormal(math.log(self.service_ns) - self.sigma**2 / 2, self.sigma, n)
        elif self.dist == "empirical":
            drawn = np.asarray(self.samples_ns, dtype=np.float64)[rng.integers(0, len(self.samples_ns), n)]
        else:
            raise ArgError(f"type {self.name!r}: unknown service-time distribution {self.dist!r} (one of {', '.join(DISTS)})")
        # A request takes at least 1 ns: the simulators rely on time moving at every completion.
        return np.maximum(np.rint(drawn), 1).astype(np.int64)


def _check_dist(where: str, t: RequestType) -> None:
    """The distribution fields of ``t`` make sense together (``where`` prefixes the message)."""
    if t.dist not in DISTS:
        raise ArgError(f"{where}: unknown service-time distribution {t.dist!r} (one of {', '.join(DISTS)})")
    if t.dist == "lognormal" and not (t.sigma > 0 and math.isfinite(t.sigma)):
        raise ArgError(f"{where}: lognormal needs a shape sigma > 0, got {t.sigma!r}")
    if t.dist == "empirical":
        if not t.samples_ns:
            raise ArgError(f"{where}: empirical needs a non-empty list of samples")
        if not all(x > 0 and math.isfinite(x) for x in t.samples_ns):
            raise ArgError(f"{where}: empirical samples must all be > 0 ns")
        mean = sum(t.samples_ns) / len(t.samples_ns)
        if abs(mean - t.service_ns) > EMPIRICAL_MEAN_TOLERANCE * t.service_ns:
            raise ArgError(
                f"{where}: the samples' mean is {mean:g} ns but the service time is {t.service_ns:g} ns; "
                "they must agree within 1 %"
            )


@dataclass(frozen=True)
class Workload:
    name: str
    types: tuple[RequestType, ...]

    def __post_init__(self) -> None:
        if not self.types:
            raise ArgError(f"workload {self.name!r}: it has no request types")
        for t in self.types:
            if not (t.service_ns > 0 and math.isfinite(t.service_ns)):
                raise ArgError(f"workload {self.name!r}: type {t.name!r} has service time {t.service_ns!r} ns; it must be > 0")
            _check_dist(f"workload {self.name!r}: type {t.name!r}", t)
            if not t.ratio >= 0:
                raise ArgError(f"workload {self.name!r}: type {t.name!r} has a negative share {t.ratio!r}")
            if not 0 < t.type_id < 256:
                raise ArgError(f"workload {self.name!r}: type {t.name!r} has id {t.type_id}; ids are 1..255 (0 is UNKNOWN)")
        seen: dict[int, str] = {}
        for t in self.types:
            if t.type_id in seen:
                raise ArgError(f"workload {self.name!r}: two types share an id: {seen[t.type_id]!r} and {t.name!r} are both {t.type_id}")
            seen[t.type_id] = t.name
        total = sum(t.ratio for t in self.types)
        if abs(total - 1.0) > 1e-6:
            raise ArgError(f"workload {self.name!r}: shares add up to {total:g}, not 1")

    @property
    def mean_service_ns(self) -> float:
        """``S``: the mean service time over all requests."""
        return sum(t.service_ns * t.ratio for t in self.types)

    def rate_rps(self, load: float, n_workers: int) -> float:
        """Offered requests per second at ``load`` (1.0 = every worker busy on average)."""
        if not 0 < load <= 1.5:
            raise ArgError(f"load {load!r} is outside (0, 1.5]")
        return load * n_workers * 1e9 / self.mean_service_ns


def _wl(name: str, *types: tuple[str, int, float, float]) -> Workload:
    return Workload(name, tuple(RequestType(n, i, s, r) for n, i, s, r in types))


WORKLOADS: dict[str, Workload] = {
    "disp2": _wl("disp2", ("SHORT", SHORT, 1_000, 0.5), ("LONG", LONG, 100_000, 0.5)),
    "sbim2": _wl("sbim2", ("SHORT", SHORT, 500, 0.995), ("LONG", LONG, 500_000, 0.005)),
    "disp3": _wl("disp3", ("SHORT", SHORT, 1_000, 0.95), ("LONG", LONG, 100_000, 0.05)),
    "tpcc": _wl(
        "tpcc",
        ("NewOrder", NEW_ORDER, 20_000, 0.44),
        ("Payment", PAYMENT, 5_700, 0.44),
        ("Delivery", DELIVERY, 88_000, 0.04),
        ("OrderStatus", ORDER_STATUS, 6_000, 0.04),
        ("StockLevel", STOCK_LEVEL, 100_000, 0.04),
    ),
    "rocksdb": _wl("rocksdb", ("GET", GET, 1_500, 0.5), ("SCAN", SCAN, 635_000, 0.5)),
}

#: The phase-changing schedule: (seconds, load, workload), four 5 s phases at 80 % load.
PHASED: tuple[tuple[float, float, Workload], ...] = (
    (5.0, 0.8, _wl("phase1", ("SHORT", SHORT, 100_000, 0.5), ("LONG", LONG, 1_000, 0.5))),
    (5.0, 0.8, _wl("phase2", ("SHORT", SHORT, 1_000, 0.5), ("LONG", LONG, 100_000, 0.5))),
    (5.0, 0.8, _wl("phase3", ("SHORT", SHORT, 1_000, 0.95), ("LONG", LONG, 100_000, 0.05))),
    (5.0, 0.8, _wl("phase4", ("SHORT", SHORT, 3_500, 1.0))),
)


def get_workload(name: str | Path) -> Workload:
    """A named workload (``disp2``, ...), or a YAML workload file (a path ending .yaml/.yml)."""
    if str(name).lower().endswith((".yaml", ".yml")):
        return load_workload(name)
    try:
        return WORKLOADS[str(name).lower()]
    except KeyError:
        raise ArgError(
            f"unknown workload {str(name)!r} (workloads: {', '.join(WORKLOADS)}, or a .yaml file)"
        ) from None


# --- YAML workload files ---------------------------------------------------------------------

_TOP_KEYS = {"name", "description", "types"}
_TYPE_KEYS = {"name", "id", "ratio", "service_us", "service_ns", "dist", "sigma", "samples_us", "samples_ns"}


def _number(where: str, field: str, value: Any) -> float:
    # PyYAML reads ``1e5`` (no dot) as a string, a YAML 1.1 quirk: accept numeric strings.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ArgError(f"{where}: field {field!r} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ArgError(f"{where}: field {field!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ArgError(f"{where}: field {field!r} must be finite, got {value!r}")
    return number


def _positive(where: str, field: str, value: Any) -> float:
    number = _number(where, field, value)
    if not number > 0:
        raise ArgError(f"{where}: field {field!r} is {value!r}; it must be > 0")
    return number


def _one_of(where: str, entry: dict, fields: tuple[str, str], scale: tuple[float, float]) -> float | list | None:
    """The value of whichever of two unit-suffixed fields is given, in ns (None if neither)."""
    given = [f for f in fields if f in entry]
    if len(given) > 1:
        raise ArgError(f"{where}: give one of {fields[0]!r} and {fields[1]!r}, not both")
    if not given:
        return None
    field = given[0]
    unit = scale[fields.index(field)]
    value = entry[field]
    if isinstance(value, list):
        if not value:
            raise ArgError(f"{where}: field {field!r} is an empty list")
        return [_positive(where, field, v) * unit for v in value]
    return _positive(where, field, value) * unit


def _type_from_yaml(where: str, entry: Any) -> RequestType:
    if not isinstance(entry, dict):
        raise ArgError(f"{where}: expected a mapping with name, id, service_us or service_ns, ratio; got {entry!r}")
    unknown = sorted(set(map(str, entry)) - _TYPE_KEYS)
    if unknown:
        raise ArgError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(sorted(_TYPE_KEYS))})")
    for field in ("name", "id", "ratio"):
        if field not in entry:
            raise ArgError(f"{where}: field {field!r} is missing")
    name = entry["name"]
    if not isinstance(name, str) or not name:
        raise ArgError(f"{where}: field 'name' must be a non-empty string, got {name!r}")
    type_id = entry["id"]
    if isinstance(type_id, bool) or not isinstance(type_id, int):
        raise ArgError(f"{where}: field 'id' must be an integer, got {type_id!r}")
    ratio = _number(where, "ratio", entry["ratio"])
    if ratio < 0:
        raise ArgError(f"{where}: field 'ratio' is {entry['ratio']!r}; it must be >= 0")
    dist = entry.get("dist", "fixed")
    if dist not in DISTS:
        raise ArgError(f"{where}: field 'dist' is {dist!r}; one of {', '.join(DISTS)}")
    if "sigma" in entry and dist != "lognormal":
        raise ArgError(f"{where}: field 'sigma' belongs to dist: lognormal only")
    service = _one_of(where, entry, ("service_us", "service_ns"), (1_000.0, 1.0))
    samples = _one_of(where, entry, ("samples_us", "samples_ns"), (1_000.0, 1.0))
    if isinstance(service, list):
        raise ArgError(f"{where}: the service time must be one number, not a list")
    if samples is not None and dist != "empirical":
        raise ArgError(f"{where}: samples belong to dist: empirical only")
    if dist == "empirical":
        if not isinstance(samples, list):
            raise ArgError(f"{where}: dist: empirical needs a list 'samples_us' or 'samples_ns'")
        if service is None:
            return RequestType.empirical(name, type_id, samples, ratio)
        return RequestType(name, type_id, service, ratio, dist, 0.0, tuple(samples))
    if service is None:
        raise ArgError(f"{where}: field 'service_us' (or 'service_ns') is missing")
    sigma = 0.0
    if dist == "lognormal":
        if "sigma" not in entry:
            raise ArgError(f"{where}: field 'sigma' is missing (dist: lognormal needs its shape)")
        sigma = _positive(where, "sigma", entry["sigma"])
    return RequestType(name, type_id, service, ratio, dist, sigma)


def load_workload(path: str | Path) -> Workload:
    """Read a :class:`Workload` from a YAML file (format in the module manual)."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArgError(f"{where}: no such workload file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ArgError(f"{where}: cannot read the workload file ({e})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ArgError(f"{where}: not valid YAML{at} ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(doc, dict):
        raise ArgError(f"{where}: expected a mapping with 'name' and 'types', got {type(doc).__name__}")
    unknown = sorted(set(map(str, doc)) - _TOP_KEYS)
    if unknown:
        raise ArgError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(sorted(_TOP_KEYS))})")
    name = doc.get("name", Path(path).stem)
    if not isinstance(name, str) or not name:
        raise ArgError(f"{where}: field 'name' must be a non-empty string, got {name!r}")
    entries = doc.get("types")
    if not isinstance(entries, list) or not entries:
        raise ArgError(f"{where}: field 'types' must be a non-empty list of request types")
    types = []
    for i, entry in enumerate(entries):
        label = entry.get("name") if isinstance(entry, dict) else None
        types.append(_type_from_yaml(f"{where}: type {label if isinstance(label, str) else f'#{i + 1}'!r}", entry))
    try:
        return Workload(name, tuple(types))
    except ArgError as e:
        raise ArgError(f"{where}: {e}") from None
