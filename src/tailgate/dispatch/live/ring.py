"""Single-producer single-consumer rings in shared memory (the artifact's LRPC channels).

Manual
------
A :class:`RingSet` is ``n_rings`` SPSC rings of ``capacity`` entries (4096, as the artifact's LRPC
rings) of ``n_fields`` int64 words each, plus ``extra_words`` int64 words of shared control state,
all in one ``multiprocessing.shared_memory`` segment viewed through numpy. The live server uses one
set dispatcher → workers (one ring per worker: request to run) and one workers → dispatcher
(completion notices).

Each ring has a head (next entry to read, written only by the consumer) and a tail (next entry to
write, written only by the producer), monotonic int64 counters on separate cache lines; an entry
lives at ``counter % capacity``. Publication order: the producer writes the entries, *then* stores
the new tail; the consumer reads the tail, copies the entries, *then* stores the new head. On x86
(total store order) two stores become visible in program order and an aligned 8-byte store is
atomic, so a consumer that sees a tail also sees the entries below it; each numpy assignment here
is a complete store before the next Python statement runs. (On a weakly ordered CPU this would
need fences that numpy cannot express.)

A full ring refuses what does not fit: ``push`` returns how many entries went in and the set
counts refused entries in ``full_refusals`` (backpressure the caller must handle — the server
keeps the request queued and retries).

Calls move several entries at a time: ``push(ring, rows)``/``pop(ring, max_n)`` on one ring;
``push_each(rings, rows)`` one entry to each of many rings and ``pop_all()`` everything waiting on
every ring, vectorized. ``push1``/``pop1`` are the scalar fast path a worker uses for its single
outstanding request (plain ints through a memoryview, no numpy per call).

Lifetime: the creating process owns the segment and must ``close()`` it (which unlinks it);
:func:`cleanup_owned` unlinks every segment this process still owns and runs at interpreter exit,
so an exception or Ctrl-C leaves nothing in ``/dev/shm``. A forked child uses the inherited
mapping directly; a spawned one attaches with ``RingSet.attach(ring_set.spec)`` (not registered
with the resource tracker, which would otherwise unlink it when that child exits).

Example::

    rs = RingSet(n_rings=2, n_fields=3)
    rs.push(0, np.array([[1, 2, 3], [4, 5, 6]]))   # 2
    rs.pop(0, 8)                                   # [[1, 2, 3], [4, 5, 6]]
    rs.close()
"""

from __future__ import annotations

import atexit
import os
import secrets
from multiprocessing import resource_tracker, shared_memory

import numpy as np

#: Segment names start with this, so tests (and people) can find leaks in /dev/shm.
SHM_PREFIX = "tg_"
_LINE_WORDS = 8            # 64-byte cache line, in int64 words
#: Word offsets of a ring's head and tail in its row of ``RingSet.idx`` (cache lines apart).
HEAD, TAIL = 0, _LINE_WORDS

_OWNED: dict[str, shared_memory.SharedMemory] = {}


def cleanup_owned() -> int:
    """Unlink every segment this process created and has not closed; returns how many."""
    n = 0
    for name, shm in list(_OWNED.items()):
        _OWNED.pop(name, None)
        try:
            shm.close()
        except BufferError:
            pass           # numpy views still alive: unlinking the name is what matters
        try:
            shm.unlink()
            n += 1
        except FileNotFoundError:
            pass
    return n


atexit.register(cleanup_owned)


def leaked_segments(prefix: str = SHM_PREFIX) -> list[str]:
    """Names in /dev/shm that start with ``prefix`` (empty where /dev/shm does not exist)."""
    try:
        return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix))
    except FileNotFoundError:
        return []


def orphaned_segments(prefix: str = SHM_PREFIX, also_pid: int | None = None) -> list[str]:
    """Segments whose creating process (``tg_<pid>_...``) has exited — nobody will unlink them —
    plus, with ``also_pid``, those that process still holds (a test's own leaks)."""
    out = []
    for name in leaked_segments(prefix):
        try:
            pid = int(name[len(prefix):].split("_", 1)[0])
        except ValueError:
            continue
        if pid == also_pid or not os.path.exists(f"/proc/{pid}"):
            out.append(name)
    return out


def _attach(name: str) -> shared_memory.SharedMemory:
    # Python 3.11 registers attached segments with the resource tracker, which would unlink the
    # owner's segment when this process exits; attach without registering.
    register = resource_tracker.register
    resource_tracker.register = lambda *a, **k: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register


class RingSet:
    """``n_rings`` SPSC rings of ``capacity`` × ``n_fields`` int64 entries plus ``extra_words``
    shared int64 words (``.extra``), in one shared-memory segment."""

    def __init__(self, n_rings: int, n_fields: int, capacity: int = 4096, extra_words: int = 0,
                 *, _attach_name: str | None = None):
        if n_rings < 1 or n_fields < 1 or capacity < 1:
            raise ValueError("a ring set needs at least one ring, one field and one entry")
        self.n_rings, self.n_fields, self.capacity, self.n_extra = n_rings, n_fields, capacity, extra_words
        idx_words = n_rings * 2 * _LINE_WORDS
        extra_pad = -(-max(extra_words, 1) // _LINE_WORDS) * _LINE_WORDS
        n_words = idx_words + extra_pad + n_rings * capacity * n_fields
        if _attach_name is None:
            name = f"{SHM_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=8 * n_words)
            _OWNED[self._shm.name] = self._shm
            self.owner = True
        else:
            self._shm = _attach(_attach_name)
            self.owner = False
        self.name = self._shm.name
        words = np.ndarray((n_words,), np.int64, buffer=self._shm.buf)
        if self.owner:
            words[:] = 0
        self.idx = words[:idx_words].reshape(n_rings, 2 * _LINE_WORDS)
        self.extra = words[idx_words: idx_words + extra_words]
        self.entries = words[idx_words + extra_pad:].reshape(n_rings, capacity, n_fields)
        self.words = memoryview(self._shm.buf).cast("q")     # every word, for scalar access
        self.extra_base = idx_words       # word index of .extra[0] in .words
        self._entry_base = idx_words + extra_pad
        self.full_refusals = 0      # entries a full ring refused (producer side, this process)

    @property
    def spec(self) -> tuple:
        """What :meth:`attach` needs in another process."""
        return (self.name, self.n_rings, self.n_fields, self.capacity, self.n_extra)

    def __reduce__(self):
        # A spawned process receives the set by name and maps it again.
        return (RingSet.attach, (self.spec,))

    @classmethod
    def attach(cls, spec: tuple) -> RingSet:
        name, n_rings, n_fields, capacity, extra = spec
        return cls(n_rings, n_fields, capacity, extra, _attach_name=name)

    def head_word(self, ring: int) -> int:
        """Index in :attr:`words` of ``ring``'s head (next entry to read)."""
        return ring * 2 * _LINE_WORDS + HEAD

    def tail_word(self, ring: int) -> int:
        """Index in :attr:`words` of ``ring``'s tail (next entry to write)."""
        return ring * 2 * _LINE_WORDS + TAIL

    # -- one ring, several entries ----------------------------------------------------------------
    def __len__(self) -> int:
        return int((self.idx[:, TAIL] - self.idx[:, HEAD]).sum())

    def count(self, ring: int) -> int:
        return int(self.idx[ring, TAIL] - self.idx[ring, HEAD])

    def push(self, ring: int, rows: np.ndarray) -> int:
        """Append rows (k, n_fields) to ``ring``; returns how many fit (the rest are refused)."""
        rows = np.asarray(rows, np.int64).reshape(-1, self.n_fields)
        tail = int(self.idx[ring, TAIL])
        room = self.capacity - (tail - int(self.idx[ring, HEAD]))
        k = min(len(rows), room)
        if k < len(rows):
            self.full_refusals += len(rows) - k
        if k <= 0:
            return 0
        pos = (tail + np.arange(k)) % self.capacity
        self.entries[ring, pos] = rows[:k]
        self.idx[ring, TAIL] = tail + k          # publish after the entries are written
        return k

    def pop(self, ring: int, max_n: int) -> np.ndarray:
        """Remove and return up to ``max_n`` entries of ``ring`` (a copy, oldest first)."""
        head = int(self.idx[ring, HEAD])
        k = min(int(self.idx[ring, TAIL]) - head, max_n)
        if k <= 0:
            return np.empty((0, self.n_fields), np.int64)
        out = self.entries[ring, (head + np.arange(k)) % self.capacity]   # fancy index: a copy
        self.idx[ring, HEAD] = head + k          # free the slots only after copying them
        return out

    # -- many rings at once ------------------------------------------------------------------------
    def push_each(self, rings: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Push ``rows[i]`` onto ``rings[i]`` (rings distinct); returns a bool mask of those that fit."""
        rings = np.asarray(rings, np.int64)
        if len(rings) == 0:
            return np.zeros(0, bool)
        tail = self.idx[rings, TAIL]
        ok = tail - self.idx[rings, HEAD] < self.capacity
        if not ok.all():
            self.full_refusals += int((~ok).sum())
            rings, tail, rows = rings[ok], tail[ok], np.asarray(rows)[ok]
        self.entries[rings, tail % self.capacity] = rows
        self.idx[rings, TAIL] = tail + 1         # publish after the entries are written
        return ok

    def pop_all(self, max_per_ring: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Everything waiting on every ring: ``(ring of each entry, entries)``, oldest first per ring."""
        head = self.idx[:, HEAD]
        avail = self.idx[:, TAIL] - head
        if max_per_ring is not None:
            avail = np.minimum(avail, max_per_ring)
        rings = np.flatnonzero(avail)
        if len(rings) == 0:
            return rings, np.empty((0, self.n_fields), np.int64)
        counts = avail[rings]
        h = head[rings]
        if (counts == 1).all():
            out = self.entries[rings, h % self.capacity]
            which = rings
        else:
            which = np.repeat(rings, counts)
            start = np.repeat(np.cumsum(counts) - counts, counts)
            pos = (np.repeat(h, counts) + np.arange(len(which)) - start) % self.capacity
            out = self.entries[which, pos]
        self.idx[rings, HEAD] = h + counts       # after the copy above
        return which, out

    # -- scalar fast path (one entry, plain ints) -------------------------------------------------
    def push1(self, ring: int, values) -> bool:
        """Append one entry (a sequence of n_fields ints); False if the ring is full."""
        w = self.words
        hi = ring * 2 * _LINE_WORDS
        tail = w[hi + TAIL]
        if tail - w[hi + HEAD] >= self.capacity:
            self.full_refusals += 1
            return False
        base = self._entry_base + (ring * self.capacity + tail % self.capacity) * self.n_fields
        for i, v in enumerate(values):
            w[base + i] = v
        w[hi + TAIL] = tail + 1
        return True

    def pop1(self, ring: int) -> list | None:
        """Remove and return the oldest entry of ``ring`` as a list of ints, or None if empty."""
        w = self.words
        hi = ring * 2 * _LINE_WORDS
        head = w[hi + HEAD]
        if w[hi + TAIL] == head:
            return None
        base = self._entry_base + (ring * self.capacity + head % self.capacity) * self.n_fields
        out = w[base: base + self.n_fields].tolist()
        w[hi + HEAD] = head + 1
        return out

    # -- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Drop this process's mapping; the owner also unlinks the segment."""
        self.idx = self.extra = self.entries = None
        try:
            self.words.release()
        except (BufferError, ValueError):
            pass             # a slice of it is still in use: the mapping goes with the process
        try:
            self._shm.close()
        except BufferError:
            pass
        if self.owner:
            _OWNED.pop(self.name, None)
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> RingSet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

