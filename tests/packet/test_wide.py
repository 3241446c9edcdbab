"""tailgate.packet.wide: unaligned big-endian loads/stores and unreferenced slot rows."""

import numpy as np
from numba import njit

from tailgate.packet.wide import ld_be16, ld_be32, ld_le16, ld_le32, prefetch, prefetch_byte, slot_row, st_be16, st_be32


@njit(cache=True)
def _roundtrip(data, s, o):
    row = slot_row(data, s)
    a = ld_be16(row, o)
    b = ld_be32(row, np.uint64(o + 1))  # unsigned offsets too
    st_be16(row, o + 8, 0x1_BEEF)  # only the low 16 bits are stored
    st_be32(row, np.int32(o + 11), -2)  # two's complement low 32 bits
    return a, b, row.shape[0]


def test_loads_and_stores_are_big_endian_at_any_offset():
    data = np.zeros((4, 32), np.uint8)
    data[2] = np.arange(32, dtype=np.uint8)
    for o in (0, 1, 3):  # odd offsets: unaligned
        d = data.copy()
        a, b, n = _roundtrip(d, 2, o)
        assert a == (o << 8) | (o + 1)
        assert b == int.from_bytes(bytes(range(o + 1, o + 5)), "big")
        assert n == 32
        assert bytes(d[2, o + 8 : o + 10]) == b"\xbe\xef"
        assert bytes(d[2, o + 11 : o + 15]) == b"\xff\xff\xff\xfe"
        # only slot 2 changed, and only there
        assert not d[[0, 1, 3]].any()
        changed = np.flatnonzero(d[2] != data[2])
        assert set(changed) <= set(range(o + 8, o + 10)) | set(range(o + 11, o + 15))


@njit(cache=True)
def _sum_rows(data, slots):
    t = 0
    for k in range(slots.shape[0]):
        t += slot_row(data, slots[k]).sum()
    return t


def test_slot_row_is_the_slot():
    data = np.arange(5 * 16, dtype=np.uint8).reshape(5, 16)
    slots = np.array([4, 0, 2], np.int32)
    assert _sum_rows(data, slots) == int(data[[4, 0, 2]].sum())


@njit(cache=True)
def _prefetch_all(data, slots):
    for k in range(slots.shape[0]):
        prefetch(data, slots[k], np.uint64(3))
    return slots.shape[0]


def test_prefetch_is_only_a_hint():
    data = np.arange(4 * 8, dtype=np.uint8).reshape(4, 8)
    before = data.copy()
    assert _prefetch_all(data, np.array([3, 0, 1], np.int32)) == 3
    assert np.array_equal(data, before)


@njit(cache=True)
def _le_loads(buf, o):
    prefetch_byte(buf, o + 100_000)  # far past the end: a hint, never a fault
    return ld_le16(buf, o), ld_le32(buf, np.uint64(o + 2))


def test_little_endian_loads_from_a_read_only_buffer():
    raw = bytes(range(1, 20))
    buf = np.frombuffer(raw, np.uint8)  # read-only, as a memory-mapped capture is
    for o in (0, 1, 5):
        a, b = _le_loads(buf, o)
        assert a == int.from_bytes(raw[o : o + 2], "little")
        assert b == int.from_bytes(raw[o + 2 : o + 6], "little")
