"""tailgate.packet.checksum against plain RFC 1071 / RFC 1624 arithmetic written out in Python."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailgate.packet.checksum import (
    csum_finish,
    csum_update16,
    csum_update32,
    fold16,
    ipv4_header_checksum,
    l4_csum_field,
    sum16_bytes,
)
from tailgate.packet.pool import PacketPool


def ref_sum(b: bytes) -> int:
    """Ones-complement sum of big-endian 16-bit words, odd tail padded, carries folded."""
    if len(b) % 2:
        b += b"\0"
    s = sum(int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b), 2))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


@settings(deadline=None)  # the first call compiles
@given(st.binary(max_size=200))
def test_sum16_bytes_fold16_and_csum_finish(b):
    s = sum16_bytes(b)
    assert s == sum(int.from_bytes((b + b"\0")[i : i + 2], "big") for i in range(0, len(b), 2))
    assert fold16(s) == ref_sum(b)
    assert csum_finish(s) == (~ref_sum(b)) & 0xFFFF


@settings(deadline=None)
@given(st.binary(min_size=20, max_size=20), st.integers(5, 15), st.binary(min_size=40, max_size=40))
def test_ipv4_header_checksum_is_the_rfc1071_sum(fixed, ihl, options):
    hdr = bytearray(bytes([0x40 | ihl]) + fixed[1:] + options)[: ihl * 4]
    hdr[10:12] = b"\xab\xcd"  # whatever is stored there is skipped
    pool = PacketPool(n_slots=4)
    b = pool.from_frames([bytes(14) + bytes(hdr)])
    got = ipv4_header_checksum(pool.data, b.idx, pool.offset[b.idx] + 14)
    hdr[10:12] = b"\0\0"
    assert int(got[0]) == (~ref_sum(bytes(hdr))) & 0xFFFF


def rfc1624_16(c: int, old: int, new: int) -> int:
    s = (~c & 0xFFFF) + (~old & 0xFFFF) + (new & 0xFFFF)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)), max_size=50))
def test_csum_update16_arrays_and_scalars(rows):
    c, o, n = (np.array([r[i] for r in rows], dtype=np.uint16) for i in range(3))
    got = csum_update16(c, o, n)
    assert got.dtype == np.uint16 and got.shape == c.shape
    assert got.tolist() == [rfc1624_16(*r) for r in rows]
    for r in rows[:5]:
        one = csum_update16(*r)
        assert isinstance(one, np.uint16) and int(one) == rfc1624_16(*r)


def test_csum_update_broadcasts_and_updates_like_a_recomputation():
    data = bytearray(b"\x45\x00\x00\x54\x12\x34\x40\x00\x40\x11\x00\x00\x0a\x00\x00\x01\xc0\x00\x02\x07")
    before = (~ref_sum(bytes(data))) & 0xFFFF
    old_src = int.from_bytes(data[12:16], "big")
    new_srcs = np.array([0x0A000002, 0xFFFFFFFF, 0], dtype=np.uint32)
    got = csum_update32(before, old_src, new_srcs)  # one checksum, three new addresses
    for new, ck in zip(new_srcs.tolist(), got.tolist()):
        d = bytearray(data)
        d[12:16] = new.to_bytes(4, "big")
        assert ck == (~ref_sum(bytes(d))) & 0xFFFF or (ck, (~ref_sum(bytes(d))) & 0xFFFF) == (0xFFFF, 0)


@pytest.mark.parametrize("proto, at", [(6, 16), (17, 6), (1, 2), (58, 2)])
def test_l4_csum_field(proto, at):
    assert l4_csum_field(proto) == at
