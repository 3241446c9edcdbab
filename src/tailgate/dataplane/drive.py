"""Helpers for testing network functions on crafted packets (as Snabb's ``selftest()`` does).

Manual
------
:func:`drive` runs one module's ``process`` on a batch made from raw frames, outside any
pipeline, and returns what came out of each output gate::

    from tailgate.nf import DecTTL
    from tailgate.dataplane.drive import drive

    m = DecTTL()
    out, pool = drive(m, [frame_bytes])
    out[0]            # frames that left on gate 0, as bytes
    m.drop_counts     # what was dropped, by reason

The module must not be wired into a pipeline: an unwired module keeps what it emits for the caller
(:meth:`~tailgate.dataplane.module.Module.open_outputs`, :meth:`~tailgate.dataplane.module.Module.drain_outputs`).
"""

from __future__ import annotations

from typing import Sequence

from tailgate.dataplane.module import Module
from tailgate.packet.pool import PacketPool


def drive(
    module: Module, frames: Sequence[bytes], *, igate: int = 0, pool: PacketPool | None = None
) -> tuple[dict[int, list[bytes]], PacketPool]:
    """Call ``module.process`` once on ``frames`` (arriving on ``igate``); returns
    ``({gate: [frame bytes, ...]}, pool)``. Output batches stay allocated in ``pool``."""
    pool = pool or PacketPool(n_slots=max(1024, 2 * len(frames)))
    module.open_outputs(pool, igate=igate)
    module.process(pool.from_frames(frames))
    out: dict[int, list[bytes]] = {}
    for gate, batch in module.drain_outputs():
        out.setdefault(gate, []).extend(batch.frames())
    return out, pool
