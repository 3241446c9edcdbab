"""Two clocks behind one interface: wall time and virtual time, both in integer nanoseconds.

Manual
------
``clock.now_ns()`` reads the time. The runtime charges every module call to the clock with
``clock.charge(start_ns, t0_ns, t1_ns, n_packets)``, which returns the nanoseconds the call cost:

- :class:`WallClock` — the cost is what the call really took (``perf_counter_ns``); modules such as
  Bypass really busy-wait.
- :class:`VirtualClock` — the cost is the module's modeled cost ``T0 + T1·b`` and the clock advances
  by exactly that much. Nothing depends on the machine, so runs are deterministic, and a user can
  model faster (or slower) hardware by changing ``T0``/``T1``.

When every task is idle the worker calls ``clock.idle_until(t_ns)``: the wall clock busy-waits (or
sleeps for long gaps), the virtual clock jumps.

``clock.pause()`` / ``clock.resume()`` stop the clock between runs: time spent in between does not
exist for the pipeline (no packet ages, no timer fires, no rate counts it). Batchy's control loop
uses it for the controller's work, which in Batchy runs on a core of its own beside the data plane;
the virtual clock stands still then anyway.
"""

from __future__ import annotations

import time

from tailgate.core.errors import ArgError


class Clock:
    virtual: bool = False
    name: str = "clock"

    def now_ns(self) -> int:
        raise NotImplementedError

    def charge(self, start_ns: int, t0_ns: float, t1_ns: float, n_packets: int) -> int:
        raise NotImplementedError

    def idle_until(self, t_ns: int) -> None:
        raise NotImplementedError

    def pause(self) -> None:
        """Stop the clock until :meth:`resume` (the virtual clock never moves on its own)."""

    def resume(self) -> None:
        """Go on from where :meth:`pause` stopped."""


class WallClock(Clock):
    """Monotonic wall time since the clock was made (``time.perf_counter_ns``)."""

    virtual = False
    name = "wall"

    def __init__(self) -> None:
        self._origin_ns = time.perf_counter_ns()
        self._paused_at: int | None = None
        self.paused_ns = 0          # all the time spent paused

    def now_ns(self) -> int:
        return time.perf_counter_ns() - self._origin_ns

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = time.perf_counter_ns()

    def resume(self) -> None:
        if self._paused_at is not None:
            gap = time.perf_counter_ns() - self._paused_at
            self._origin_ns += gap          # now_ns() goes on from where it stopped
            self.paused_ns += gap
            self._paused_at = None

    def charge(self, start_ns: int, t0_ns: float, t1_ns: float, n_packets: int) -> int:
        return time.perf_counter_ns() - self._origin_ns - start_ns

    def idle_until(self, t_ns: int) -> None:
        gap_ns = t_ns - self.now_ns()
        # Sleep only for long gaps: time.sleep overshoots by tens of microseconds.
        if gap_ns > 2_000_000:
            time.sleep((gap_ns - 1_000_000) / 1e9)
        while self.now_ns() < t_ns:
            pass


class VirtualClock(Clock):
    """Virtual time: advances only by modeled costs and idle jumps."""

    virtual = True
    name = "virtual"

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = int(start_ns)

    def now_ns(self) -> int:
        return self._now_ns

    def advance(self, dt_ns: int) -> None:
        if dt_ns < 0:
            raise ValueError(f"virtual clock cannot go back ({dt_ns} ns)")
        self._now_ns += int(dt_ns)

    def charge(self, start_ns: int, t0_ns: float, t1_ns: float, n_packets: int) -> int:
        cost_ns = int(round(t0_ns + t1_ns * n_packets))
        self._now_ns += cost_ns
        return cost_ns

    def idle_until(self, t_ns: int) -> None:
        if t_ns > self._now_ns:
            self._now_ns = int(t_ns)


def make_clock(name: str) -> Clock:
    """``"wall"`` or ``"virtual"``."""

    if name == "wall":
        return WallClock()
    if name == "virtual":
        return VirtualClock()
    raise ArgError(f"unknown clock {name!r}: choose 'wall' or 'virtual'")
