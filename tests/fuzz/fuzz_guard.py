"""Packet slots whose frames end against an unreadable page, so that any read past a frame's
last byte kills the process with SIGSEGV instead of reading a neighbour's bytes.

Each slot row is two pages of an anonymous ``mmap``: the first readable and writable, the
second made ``PROT_NONE`` with ``mprotect``. :meth:`GuardedRows.load` copies each frame to the
END of its row's first page (``offset = PAGE - len(frame)``), so the frame's last byte is the
last readable byte; the bytes in front of it are the headroom encapsulation grows into. The
pool is :meth:`tailgate.packet.pool.PacketPool.from_buffer` over those rows: tailgate's kernels
see an ordinary C-contiguous ``(n_slots, 2 * PAGE)`` pool.
"""

from __future__ import annotations

import ctypes
import mmap

import numpy as np

from tailgate.packet.pool import Batch, PacketPool

PAGE_BYTES = mmap.PAGESIZE
PROT_NONE = 0
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class GuardedRows:
    """``n_slots`` slots, each one readable page followed by an unreadable one."""

    def __init__(self, n_slots: int, headroom_bytes: int = 128) -> None:
        self._mm = mmap.mmap(-1, n_slots * 2 * PAGE_BYTES, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        data = np.frombuffer(self._mm, dtype=np.uint8).reshape(n_slots, 2 * PAGE_BYTES)
        base = data.ctypes.data
        for s in range(n_slots):
            if _libc.mprotect(base + (2 * s + 1) * PAGE_BYTES, PAGE_BYTES, PROT_NONE) != 0:
                raise OSError(ctypes.get_errno(), "mprotect failed")
        self.pool = PacketPool.from_buffer(data, headroom_bytes=headroom_bytes)

    def load(self, frames: list[bytes]) -> Batch:
        """A batch of ``frames``, each ending at the last readable byte of its slot."""
        pool = self.pool
        idx = pool.alloc_idx(len(frames))
        for s, f in zip(idx.tolist(), frames):
            o = PAGE_BYTES - len(f)
            pool.data[s, o:PAGE_BYTES] = np.frombuffer(f, dtype=np.uint8)
            pool.offset[s] = o
            pool.length[s] = len(f)
            pool.wire_len[s] = len(f)
        return Batch(pool, idx)
