"""FractionalBuffer — a controlled queue that releases batches of exactly its trigger size.

Manual
------
Batchy puts one in front of every *controlled* module (see :mod:`tailgate.batchy.build`); a
controller sets its ``trigger`` every control round. It runs inside its task, like any module
(it is not a task root):

- ``trigger = 0``: pass-through. Packets still buffered (from a larger trigger before) leave
  first, as one batch, then the incoming batch goes on unchanged.
- ``trigger = q > 0``: incoming packets join the buffer; each time it holds ``q`` packets,
  exactly one batch of ``q`` leaves, in the same call (so a burst of 3·q leaves as three
  batches). What is left over waits for more packets.
- Lowering the trigger below what is buffered flushes the buffer as-is (one batch) on the next
  call or timer; a new value is checked against the argument's range before it takes effect,
  so a wrong one never reaches the running buffer (the original checked the *old* value).
- **Flush timeout** (the original has none: with a stalled input, its packets waited for
  ever): a packet never waits more than ``flush_timeout_ns``. The buffer is checked on every
  call, and the task it belongs to also checks it on every round, including rounds in which its
  root had nothing (``deadline_ns``/``on_timer``, see :mod:`tailgate.dataplane.runtime`); an
  idle virtual clock jumps to the next deadline instead of stopping.

Gates: 1 in / 1 out. Counters: ``occupancy``, ``flushes_timeout``, ``flushes_resize``,
``batches_out``, ``held_at_stop`` (packets still waiting when the run finished: freed, not
counted as drops); ``trigger`` is a knob (``fb.set("trigger", 16)``).

Example: three packets wait for a fourth; six more make two batches of four and leave one.

>>> from tailgate.dataplane.drive import drive
>>> from tailgate.nf import FractionalBuffer
>>> from tailgate.packet.craft import frame
>>> fb = FractionalBuffer(trigger=4)
>>> out, pool = drive(fb, [frame()] * 3)
>>> out, len(fb)
({}, 3)
>>> out, _ = drive(fb, [frame()] * 6, pool=pool)     # the buffered packets live in this pool
>>> len(out[0]), fb.counter("batches_out"), len(fb)
(8, 2, 1)
"""

from __future__ import annotations

import time

import numpy as np

from tailgate.core.args import Arg
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.module import Module
from tailgate.packet.pool import MAX_TRIGGER

#: room for a full trigger's leftovers plus the largest burst a task hands on (4096)
_CAPACITY = MAX_TRIGGER + 4096
_NEVER = 1 << 62


class FractionalBuffer(Module):
    __doc__ = __doc__
    # Batchy's model counts a buffer as free; its few numpy calls per batch are the
    # surrounding modules' T0 in a profile.
    cost_ns = (0.0, 0.0)
    timer = True
    # the module behind gets each released batch in a call of its own, not merged (runtime)
    exact_batches = True
    args = (
        Arg("trigger", int, 0, unit="packets", min=0, max=MAX_TRIGGER, help="released batch size; 0 = pass-through"),
        Arg("flush_timeout_ns", int, 1_000_000, unit="ns", min=1, max=10**12,
            help="the longest a packet waits in the buffer"),
    )

    def setup(self) -> None:
        self._idx = np.empty(_CAPACITY, np.int32)
        # (end position, arrival time) of each incoming batch still (partly) buffered: the oldest
        # waiting packet's arrival is its first entry's (a per-packet time array would cost three
        # more numpy calls a batch, more than a buffer saves on the wall clock: docs/notes.md)
        self._chunks: list[tuple[int, int]] = []
        self._n = 0
        self.deadline_ns = _NEVER                     # when the oldest buffered packet must leave

    def reset_counters(self) -> None:
        super().reset_counters()
        self.flushes_timeout = 0
        self.flushes_resize = 0
        self.batches_out = 0
        self.held_at_stop = 0

    def __len__(self) -> int:
        return self._n

    def _now(self) -> int:
        return self.clock.now_ns() if self.clock is not None else 0

    def _flush(self) -> None:
        n = self._n
        if n:
            self._n = 0
            self._chunks.clear()
            self.deadline_ns = _NEVER
            self.batches_out += 1
            self.emit(self.pool.batch(self._idx[:n].copy()))

    def process(self, batch) -> None:
        q = self.trigger
        idx = batch.idx
        k = len(idx)
        if q == 0:
            self._flush()
            if k:
                self.batches_out += 1
                self.emit(batch)
            return
        if self._n > q:              # the trigger was lowered below what waits: flush as-is
            self.flushes_resize += 1
            self._flush()
        now = self._now()
        if self._n and now >= self.deadline_ns:
            self.flushes_timeout += 1
            self._flush()
        if self._n == 0 and k >= q and k % q == 0:
            # The common case under a full input: whole batches of q, no copy into the buffer.
            if k == q:
                self.batches_out += 1
                self.emit(batch)
            else:
                for s in range(0, k, q):
                    self.batches_out += 1
                    self.emit(self.pool.batch(idx[s:s + q].copy()))
            return
        n = self._n
        if n + k > _CAPACITY:        # cannot happen with bursts <= 4096; flush rather than lose packets
            self._flush()
            n = 0
        if not k:
            return
        buf = self._idx
        buf[n:n + k] = idx
        chunks = self._chunks
        chunks.append((n + k, now))
        n += k
        if n >= q:
            m = n - n % q
            out = buf[:m].copy()         # one copy for every batch released: views of it
            for s in range(0, m, q):
                self.batches_out += 1
                self.emit(self.pool.batch(out[s:s + q]))
            if n > m:
                buf[: n - m] = buf[m:n]
            self._chunks = chunks = [(e - m, t) for e, t in chunks if e > m]
            n -= m
        self._n = n
        self.deadline_ns = chunks[0][1] + self.flush_timeout_ns if n else _NEVER

    def on_timer(self, now_ns: int) -> int:
        """Called by the task when ``now_ns >= deadline_ns``: release what waits. Returns packets."""
        n = self._n
        if n and now_ns >= self.deadline_ns:
            if n >= self.trigger:        # the trigger went down (or to 0) while packets waited
                self.flushes_resize += 1
            else:
                self.flushes_timeout += 1
            self._flush()
            return n
        return 0

    def on_set(self, name: str) -> None:
        if name == "trigger" and self._n and self._n >= self.trigger:
            # a trigger at or below what waits (or 0): release it at the task's next round,
            # not at the next arrival, which may never come
            self.deadline_ns = 0

    def finish(self) -> None:
        # packets still buffered at the end of a run go back to the pool, counted as held at stop
        # (not as drops: nothing lost them; Batchy sends them on before this, batchy.loop)
        if self._n and self.pool is not None:
            self.pool.free_idx(self._idx[: self._n].copy())
            self.held_at_stop += self._n
            self._n = 0
            self._chunks.clear()
            self.deadline_ns = _NEVER

    def extra_counters(self) -> dict:
        return {"occupancy": self._n, "flushes_timeout": self.flushes_timeout,
                "flushes_resize": self.flushes_resize, "batches_out": self.batches_out,
                "held_at_stop": self.held_at_stop}


def hold_cost_ns(pool, batch_packets: int = 16, trigger: int = 20, calls: int = 2000) -> float:
    """What holding packets back costs a buffer per arriving batch on this machine (ns): one at
    ``trigger`` fed batches of ``batch_packets`` (emitting about one batch per call), less the same
    buffer passing them through (the median of five timings). Batchy's controller weighs it on the
    wall clock against what a larger batch saves the module behind."""
    with Pipeline():                # a pipeline of its own: nothing joins the user's
        fb = FractionalBuffer(name="hold_cost")
    fb.pool = pool
    fb.emit = lambda b: None
    batch = pool.batch(np.arange(batch_packets, dtype=np.int32))

    def per_call(q: int) -> float:
        fb.trigger = q
        fb._flush()
        t = time.perf_counter_ns()
        for _ in range(calls):
            fb.process(batch)
        return (time.perf_counter_ns() - t) / calls

    diffs = sorted(per_call(trigger) - per_call(0) for _ in range(5))
    return max(diffs[2], 0.0)
