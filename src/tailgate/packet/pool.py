"""Packet pool and batches.

Manual
------
A :class:`PacketPool` owns every packet byte in one 2-D ``uint8`` array: ``data[slot, byte]``.
Each slot is ``slot_bytes`` long (default 2048). A frame starts ``offset[slot]`` bytes into its
slot, so that tunnel encapsulation can grow a frame toward the front (the *headroom*, default 128
bytes, as in a DPDK mbuf) and decapsulation can shrink it, without moving the payload.
``PacketPool.from_buffer(data)`` makes a pool over an array the caller already has (the fuzz
tests map rows whose frames end against an unreadable page).

Per-slot metadata columns (numpy arrays indexed by slot):

=============  ========  ==========================================================
column         dtype     meaning
=============  ========  ==========================================================
offset         int32     first byte of the frame inside the slot
length         int32     bytes of the frame held in the slot (the captured length)
wire_len       int32     length of the frame on the wire (>= length for snapped captures)
arrival_ns     int64     arrival timestamp, integer nanoseconds on the run's clock
in_port        int16     input port
out_port       int16     output port (-1: not set)
flow_id        int32     flow id (-1: not set)
anno           int64     ``(n_slots, N_ANNOTATIONS)`` free-form annotations
=============  ========  ==========================================================

A :class:`Batch` is the pool plus an ``int32`` array of slot indices. Splitting by a mask or by
output gate, merging and freeing only move indices: packet bytes are never copied.

Example::

    pool = PacketPool(n_slots=4096)
    batch = pool.alloc(32)                 # 32 empty frames
    batch.set_frames([b"\\x00" * 60] * 32)  # (tests) fill them from bytes
    small, big = batch.split(batch.lengths < 100)
    small.free()
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from numba import njit

from tailgate.packet.proto import parse

DEFAULT_SLOT_BYTES = 2048
DEFAULT_HEADROOM_BYTES = 128
DEFAULT_BURST = 32
#: the largest batch a buffer may gather before handing it on: a FractionalBuffer's trigger
#: (tailgate.nf.fbuffer) and Batchy's fixedN go up to this; Batchy's other controllers stop at
#: DEFAULT_BURST
MAX_TRIGGER = 1024
N_ANNOTATIONS = 8
#: Annotation column written by the Timestamp module (clock ns).
ANNO_TIMESTAMP = 0
#: Annotation column holding a packet's capture timestamp (ns) when it came from a pcap file.
ANNO_CAPTURE_TS = 7

_EMPTY_IDX = np.zeros(0, dtype=np.int32)


@njit(cache=True, inline="always")
def take_slot(free, n_free, k, offset, length, wire_len, arrival_ns, in_port, out_port, flow_id, anno, in_use, headroom):
    """Take the ``k``-th slot from the top of the free stack (``n_free`` before this call's
    takes) and reset its metadata; returns it as an unsigned index. Kernels that fill frames as
    they allocate them (the pcap reader) take slots with this, as :meth:`PacketPool.alloc_idx`
    does, and the caller then lowers ``pool._n_free`` by the number taken."""
    # an unsigned slot index: numba then skips its negative-index wraparound on every column
    s = np.uint64(free[n_free - 1 - k])
    offset[s] = headroom
    length[s] = 0
    wire_len[s] = 0
    arrival_ns[s] = 0
    in_port[s] = 0
    out_port[s] = -1
    flow_id[s] = -1
    for j in range(anno.shape[1]):  # (anno[s, j], not a row view: a view costs two atomic operations)
        anno[s, j] = 0
    in_use[s] = True
    return s


@njit(cache=True)
def _alloc_kernel(free, n_free, idx, offset, length, wire_len, arrival_ns, in_port, out_port, flow_id, anno, in_use, headroom):
    for k in range(idx.shape[0]):
        idx[k] = take_slot(
            free, n_free, k, offset, length, wire_len, arrival_ns, in_port, out_port, flow_id, anno, in_use, headroom
        )


@njit(cache=True)
def _free_kernel(free, n_free, idx, in_use):
    """Push slots back; returns the new free count, or -(k+1) if idx[k] was not in use."""
    for k in range(idx.shape[0]):
        s = idx[k]
        if not in_use[s]:
            # Undo this call's frees so the pool stays consistent after the error.
            for j in range(k):
                in_use[idx[j]] = True
            return -(k + 1)
        in_use[s] = False
        free[n_free + k] = s
    return n_free + idx.shape[0]


@njit(cache=True)
def _gather(col, idx, out):
    for k in range(idx.shape[0]):
        out[k] = col[idx[k]]


@njit(cache=True)
def _put_scalar(col, idx, v):
    for k in range(idx.shape[0]):
        col[idx[k]] = v


@njit(cache=True)
def _put_values(col, idx, v):
    for k in range(idx.shape[0]):
        col[idx[k]] = v[k]


_INT_BOUNDS = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max)) for t in (np.int16, np.int32, np.int64)}


def _fast_put(col: np.ndarray, idx: np.ndarray, value) -> bool:
    """``col[idx] = value`` with a kernel when that is exactly what numpy would do; False if not
    handled (then the caller uses numpy)."""
    if type(value) is int:
        b = _INT_BOUNDS.get(col.dtype)
        if b is not None and b[0] <= value <= b[1]:
            _put_scalar(col, idx, value)
            return True
    elif type(value) is np.ndarray and value.base is None and value.dtype == col.dtype and value.shape == idx.shape:
        # (an array owning its memory cannot overlap the column, which numpy would allow for)
        _put_values(col, idx, value)
        return True
    return False


class PoolExhausted(RuntimeError):
    """Raised when a pool has fewer free slots than asked for."""


class PacketPool:
    """Fixed-size packet slots in one 2-D ``uint8`` array, with per-slot metadata columns."""

    def __init__(
        self,
        n_slots: int = 65536,
        slot_bytes: int = DEFAULT_SLOT_BYTES,
        headroom_bytes: int = DEFAULT_HEADROOM_BYTES,
    ) -> None:
        if n_slots <= 0:
            raise ValueError(f"PacketPool: n_slots must be positive, got {n_slots}")
        if slot_bytes < 64 or headroom_bytes < 0 or headroom_bytes >= slot_bytes - 60:
            raise ValueError(
                f"PacketPool: slot_bytes={slot_bytes} and headroom_bytes={headroom_bytes} leave no room for a frame"
            )
        self.n_slots = int(n_slots)
        self.slot_bytes = int(slot_bytes)
        self.headroom_bytes = int(headroom_bytes)
        self.data = np.zeros((self.n_slots, self.slot_bytes), dtype=np.uint8)
        self.offset = np.full(self.n_slots, self.headroom_bytes, dtype=np.int32)
        self.length = np.zeros(self.n_slots, dtype=np.int32)
        self.wire_len = np.zeros(self.n_slots, dtype=np.int32)
        self.arrival_ns = np.zeros(self.n_slots, dtype=np.int64)
        self.in_port = np.zeros(self.n_slots, dtype=np.int16)
        self.out_port = np.full(self.n_slots, -1, dtype=np.int16)
        self.flow_id = np.full(self.n_slots, -1, dtype=np.int32)
        self.anno = np.zeros((self.n_slots, N_ANNOTATIONS), dtype=np.int64)
        self.in_use = np.zeros(self.n_slots, dtype=np.bool_)
        # Free slots are a stack: allocation takes from the top, so recently freed (cache-warm)
        # slots are reused first.
        self._free = np.arange(self.n_slots - 1, -1, -1, dtype=np.int32)
        self._n_free = self.n_slots

    @classmethod
    def from_buffer(cls, data: np.ndarray, headroom_bytes: int = DEFAULT_HEADROOM_BYTES) -> "PacketPool":
        """A pool whose packet bytes are ``data``, an existing ``(n_slots, slot_bytes)``
        C-contiguous ``uint8`` array (memory the caller mapped itself: a fuzzer's rows with an
        unreadable page after each frame, shared memory), used as it is, never copied or zeroed.
        The caller keeps ``data``'s memory alive as long as the pool. ValueError for any other
        array."""
        if not (
            isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.flags.c_contiguous
        ):
            raise ValueError("PacketPool.from_buffer: data must be a 2-D C-contiguous uint8 array")
        pool = cls(n_slots=data.shape[0], slot_bytes=data.shape[1], headroom_bytes=headroom_bytes)
        pool.data = data  # (the zeroed array the constructor made is never touched: calloc'd pages)
        return pool

    @property
    def max_frame_bytes(self) -> int:
        """Largest frame a slot holds with the default headroom."""
        return self.slot_bytes - self.headroom_bytes

    @property
    def n_free(self) -> int:
        return self._n_free

    @property
    def n_used(self) -> int:
        return self.n_slots - self._n_free

    def alloc_idx(self, n: int) -> np.ndarray:
        """Take ``n`` slots and reset their metadata; returns their indices (int32)."""
        if n > self._n_free:
            raise PoolExhausted(
                f"packet pool exhausted: asked for {n} slots, {self._n_free} of {self.n_slots} free"
            )
        idx = np.empty(n, dtype=np.int32)
        # One compiled call resets every column: nine numpy fancy assignments cost far more.
        _alloc_kernel(
            self._free, self._n_free, idx, self.offset, self.length, self.wire_len, self.arrival_ns,
            self.in_port, self.out_port, self.flow_id, self.anno, self.in_use, self.headroom_bytes,
        )
        self._n_free -= n
        return idx

    def slot_columns(self) -> tuple:
        """``(free, n_free, offset, length, wire_len, arrival_ns, in_port, out_port, flow_id, anno,
        in_use, headroom)``: what :func:`take_slot` needs, in its order."""
        return (
            self._free, self._n_free, self.offset, self.length, self.wire_len, self.arrival_ns, self.in_port,
            self.out_port, self.flow_id, self.anno, self.in_use, self.headroom_bytes,
        )

    def alloc(self, n: int) -> "Batch":
        """A batch of ``n`` fresh, empty frames."""
        return Batch(self, self.alloc_idx(n))

    def free_idx(self, idx: np.ndarray) -> None:
        """Return slots to the pool. Freeing a slot that is not in use is a bug and raises."""
        if len(idx) == 0:
            return
        n_free = _free_kernel(self._free, self._n_free, idx, self.in_use)
        if n_free < 0:
            bad = int(idx[-n_free - 1])
            raise RuntimeError(f"packet pool: double free of slot {bad}")
        self._n_free = n_free

    def batch(self, idx: np.ndarray | Sequence[int]) -> "Batch":
        """Wrap existing slot indices as a batch (no allocation)."""
        return Batch(self, np.asarray(idx, dtype=np.int32))

    def empty_batch(self) -> "Batch":
        return Batch(self, _EMPTY_IDX)

    def from_frames(self, frames: Iterable[bytes], arrival_ns: int | Sequence[int] = 0) -> "Batch":
        """Allocate a batch holding copies of ``frames`` (for tests, examples and slow paths)."""
        frames = list(frames)
        batch = self.alloc(len(frames))
        batch.set_frames(frames)
        batch.arrival_ns = np.broadcast_to(np.asarray(arrival_ns, dtype=np.int64), (len(frames),))
        return batch


class Batch:
    """A view of some pool slots: the pool plus an ``int32`` index array.

    Metadata properties (``lengths``, ``arrival_ns``, ``flow_id`` ...) return *copies* gathered
    from the pool columns; assign to them to write back. Packet bytes stay in the pool.
    """

    __slots__ = ("pool", "idx", "_headers")

    def __init__(self, pool: PacketPool, idx: np.ndarray) -> None:
        self.pool = pool
        self.idx = idx if idx.dtype == np.int32 else idx.astype(np.int32)
        self._headers = None

    def __len__(self) -> int:
        return len(self.idx)

    def __bool__(self) -> bool:
        return len(self.idx) > 0

    def __repr__(self) -> str:
        return f"Batch({len(self.idx)} packets)"

    # -- structure -------------------------------------------------------------------------
    def select(self, mask_or_index: np.ndarray) -> "Batch":
        """A batch of the packets selected by a boolean mask or by positions."""
        return Batch(self.pool, self.idx[mask_or_index])

    def split(self, mask: np.ndarray) -> tuple["Batch", "Batch"]:
        """``(selected, rest)`` by a boolean mask, order kept in both."""
        mask = np.asarray(mask, dtype=np.bool_)
        return Batch(self.pool, self.idx[mask]), Batch(self.pool, self.idx[~mask])

    def by_gate(self, gate: np.ndarray, n_gates: int) -> list["Batch"]:
        """Split into ``n_gates`` batches by a per-packet gate number (order kept per gate).

        Packets whose gate is outside ``[0, n_gates)`` are left out; the caller accounts for them.
        """
        gate = np.asarray(gate)
        if n_gates == 1:
            return [Batch(self.pool, self.idx[gate == 0])]
        order = np.argsort(gate, kind="stable")
        sorted_gate = gate[order]
        bounds = np.searchsorted(sorted_gate, np.arange(n_gates + 1))
        sidx = self.idx[order]
        return [Batch(self.pool, sidx[bounds[g] : bounds[g + 1]]) for g in range(n_gates)]

    @staticmethod
    def merge(batches: Sequence["Batch"]) -> "Batch":
        """Concatenate batches of one pool (indices only)."""
        batches = [b for b in batches if len(b)]
        if not batches:
            raise ValueError("Batch.merge needs at least one non-empty batch")
        if len(batches) == 1:
            return batches[0]
        pool = batches[0].pool
        return Batch(pool, np.concatenate([b.idx for b in batches]))

    def free(self) -> None:
        """Give the slots back to the pool; the batch is empty afterwards."""
        self.pool.free_idx(self.idx)
        self.idx = _EMPTY_IDX
        self._headers = None

    def invalidate_headers(self) -> None:
        """Forget the cached protocol view (call after changing header layout, e.g. encap)."""
        self._headers = None

    # -- metadata columns --------------------------------------------------------------------
    # Gathers and scatters go through small numba kernels: a compiled loop costs a fraction of
    # numpy's fancy indexing per call. Anything but a plain int scalar or an array
    # of the column's own dtype and the batch's length takes the numpy path (its casting and
    # range-check rules).
    def _col(name):  # noqa: N805 - descriptor factory used in the class body only
        def get(self):
            col = getattr(self.pool, name)
            out = np.empty(self.idx.shape[0], col.dtype)
            _gather(col, self.idx, out)
            return out

        def set_(self, value):
            col = getattr(self.pool, name)
            if not _fast_put(col, self.idx, value):
                col[self.idx] = value

        return property(get, set_, doc=f"per-packet ``{name}`` (gathered copy; assign to write back)")

    lengths = _col("length")
    offsets = _col("offset")
    wire_lens = _col("wire_len")
    arrival_ns = _col("arrival_ns")
    in_port = _col("in_port")
    out_port = _col("out_port")
    flow_id = _col("flow_id")
    del _col

    def anno(self, k: int) -> np.ndarray:
        return self.pool.anno[self.idx, k]

    def set_anno(self, k: int, value) -> None:
        col = self.pool.anno[:, k]
        if not _fast_put(col, self.idx, value):
            col[self.idx] = value

    # -- bytes (tests, slow paths) ---------------------------------------------------------------
    def frame(self, i: int) -> bytes:
        s = int(self.idx[i])
        o = int(self.pool.offset[s])
        return self.pool.data[s, o : o + int(self.pool.length[s])].tobytes()

    def frames(self) -> list[bytes]:
        return [self.frame(i) for i in range(len(self.idx))]

    def set_frames(self, frames: Sequence[bytes]) -> None:
        pool = self.pool
        if len(frames) != len(self.idx):
            raise ValueError(f"set_frames: {len(frames)} frames for a batch of {len(self.idx)}")
        for s, f in zip(self.idx.tolist(), frames):
            o = int(pool.offset[s])
            if o + len(f) > pool.slot_bytes:
                raise ValueError(f"frame of {len(f)} bytes does not fit a {pool.slot_bytes}-byte slot")
            pool.data[s, o : o + len(f)] = np.frombuffer(f, dtype=np.uint8)
            pool.length[s] = len(f)
            pool.wire_len[s] = len(f)
        self._headers = None

    def headroom(self) -> np.ndarray:
        """Bytes available in front of each frame."""
        return self.offsets


def _headers(self: Batch):
    """The batch's protocol view (:func:`tailgate.packet.proto.parse`), computed once and cached."""
    h = self._headers
    if h is None:
        h = parse(self)
    return h


Batch.headers = property(_headers)
