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
"""

from __future__ import annotations

from dataclasses import dataclass

from tailgate.core.errors import ArgError

UNKNOWN, SHORT, LONG, PAGE, REGEX = 0, 1, 2, 3, 4
NEW_ORDER, PAYMENT, DELIVERY, ORDER_STATUS, STOCK_LEVEL = 5, 6, 7, 8, 9
GET, SCAN = 10, 11


@dataclass(frozen=True)
class RequestType:
    name: str
    type_id: int
    service_ns: float
    ratio: float


@dataclass(frozen=True)
class Workload:
    name: str
    types: tuple[RequestType, ...]

    def __post_init__(self) -> None:
        if not self.types:
            raise ArgError(f"workload {self.name!r}: it has no request types")
        for t in self.types:
            if not t.service_ns > 0:
                raise ArgError(f"workload {self.name!r}: type {t.name!r} has service time {t.service_ns!r} ns; it must be > 0")
            if not t.ratio >= 0:
                raise ArgError(f"workload {self.name!r}: type {t.name!r} has a negative share {t.ratio!r}")
            if not 0 < t.type_id < 256:
                raise ArgError(f"workload {self.name!r}: type {t.name!r} has id {t.type_id}; ids are 1..255 (0 is UNKNOWN)")
        ids = [t.type_id for t in self.types]
        if len(set(ids)) != len(ids):
            raise ArgError(f"workload {self.name!r}: two types share an id")
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


def get_workload(name: str) -> Workload:
    try:
        return WORKLOADS[name.lower()]
    except KeyError:
        raise ArgError(f"unknown workload {name!r} (workloads: {', '.join(WORKLOADS)})") from None
