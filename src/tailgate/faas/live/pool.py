"""The live warm pool: :class:`tailgate.faas.strategies.Pool`'s bookkeeping, holding real sandboxes.

Manual
------
::

    pool = WarmPool(backend, Pool(max_per_function=50, max_total=200, idle_lifetime_s=600))
    sb, cold = await pool.acquire(spec)      # newest warm sandbox of the function (LIFO), else a new one
    ...                                      # run a batch in sb
    await pool.release(sb)                   # warm again; or pool.retire(sb): destroyed (died, timed out)
    await pool.expire()                      # the cleaner: idle longer than idle_lifetime_s -> destroyed

The pure :class:`~tailgate.faas.strategies.Pool` decides (LIFO order, idle expiry, the bound per
function and in total, which idle sandbox of another function makes room); this class creates
and destroys the sandboxes it names. ``acquire`` waits while a bound leaves no room, until a
sandbox is released or retired; ``try_acquire`` returns None instead. A warm sandbox found dead
(killed while idle) is retired and the next one taken. Every sandbox created is counted, with its
cold start (create → first reply) in ``cold_starts_s``.
"""

from __future__ import annotations

import asyncio
import time

from tailgate.faas.live.registry import FunctionSpec
from tailgate.faas.live.sandbox import Backend, Sandbox
from tailgate.faas.strategies import Pool


class WarmPool:
    """Real sandboxes behind a :class:`Pool`; see the module manual."""

    def __init__(self, backend: Backend, pool: Pool) -> None:
        self.backend = backend
        self.pool = pool
        self.sandboxes: dict[int, Sandbox] = {}
        self.in_use: set[int] = set()
        self.cold_starts_s: list[float] = []
        self.used: set[int] = set()
        self.changed = asyncio.Condition()
        self.t0 = time.monotonic()

    def now_s(self) -> float:
        return time.monotonic() - self.t0

    async def try_acquire(self, spec: FunctionSpec) -> tuple[Sandbox, bool] | None:
        """A sandbox for ``spec`` now, or None when a bound leaves no room."""
        while True:
            got = self.pool.acquire(spec.index, self.now_s())
            if got is None:
                return None
            sid, cold = got
            self.in_use.add(sid)
            await self.reconcile()  # the pure pool may have dropped idle ones to make room
            if not cold:
                sb = self.sandboxes[sid]
                if sb.dead:  # died while idle
                    await self.retire(sb)
                    continue
                self.used.add(sid)
                return sb, False
            try:
                sb = await self.backend.create(spec, sid)
            except BaseException:
                self.in_use.discard(sid)
                self.pool.discard(spec.index, sid)
                raise
            self.sandboxes[sid] = sb
            self.cold_starts_s.append(sb.cold_start_s)
            self.used.add(sid)
            return sb, True

    async def acquire(self, spec: FunctionSpec) -> tuple[Sandbox, bool]:
        """A sandbox for ``spec``, waiting while a bound leaves no room."""
        while True:
            got = await self.try_acquire(spec)
            if got is not None:
                return got
            async with self.changed:
                await self.changed.wait()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def release(self, sb: Sandbox) -> None:
        """``sb`` finished its batch: warm again (or retired when it died meanwhile)."""
        if sb.dead:
            await self.retire(sb)
            return
        self.in_use.discard(sb.sid)
        self.pool.release(sb.spec.index, sb.sid, max(self.now_s(), self._newest_release(sb.spec.index)))
        await self._notify()

    def _newest_release(self, func: int) -> float:
        q = self.pool.warm.get(func)
        return q[-1][1] if q else 0.0

    async def retire(self, sb: Sandbox) -> None:
        """Destroy an acquired sandbox (it died, or an invocation in it timed out)."""
        self.in_use.discard(sb.sid)
        if self.sandboxes.pop(sb.sid, None) is not None:
            self.pool.discard(sb.spec.index, sb.sid)
        await self.backend.destroy(sb)
        await self._notify()

    def warm_ids(self) -> set[int]:
        return {sid for q in self.pool.warm.values() for sid, _ in q}

    async def reconcile(self) -> None:
        """Destroy the sandboxes the pure pool dropped (expired, or made room for another function)."""
        keep = self.warm_ids() | self.in_use
        for sid in [s for s in self.sandboxes if s not in keep]:
            await self.backend.destroy(self.sandboxes.pop(sid))

    async def expire(self) -> int:
        """The cleaner's step: destroy sandboxes idle longer than the lifetime; how many."""
        n = self.pool.expire(self.now_s())
        await self.reconcile()
        return n

    async def close(self) -> None:
        """Destroy every sandbox (in use or not)."""
        for sid in list(self.sandboxes):
            await self.backend.destroy(self.sandboxes.pop(sid))
        self.in_use.clear()

    def stats(self) -> dict:
        return {"created": self.pool.created, "used": len(self.used), "live": len(self.sandboxes),
                "in_use": len(self.in_use), "idle": len(self.warm_ids()), "peak": self.pool.peak_total,
                "destroyed": self.pool.destroyed}
