"""PacketPool.from_buffer: a pool over memory the caller owns (the fuzzer's guarded rows)."""

import mmap

import numpy as np
import pytest

from tailgate.packet.pool import PacketPool


def test_from_buffer_uses_the_array_itself():
    mm = mmap.mmap(-1, 4 * 8192)
    data = np.frombuffer(mm, dtype=np.uint8).reshape(4, 8192)
    data[:] = 0xAB  # never zeroed by the pool
    pool = PacketPool.from_buffer(data, headroom_bytes=64)
    assert pool.data is data and (pool.n_slots, pool.slot_bytes, pool.headroom_bytes) == (4, 8192, 64)
    batch = pool.from_frames([b"\x01\x02\x03"])
    s = int(batch.idx[0])
    assert bytes(data[s, 64:68]) == b"\x01\x02\x03\xab"
    assert batch.frames() == [b"\x01\x02\x03"] and pool.n_free == 3
    batch.free()
    assert pool.n_free == 4


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 2048), np.int8), np.zeros(2048, np.uint8), np.zeros((4, 4096), np.uint8)[:, ::2], [[0] * 2048]],
)
def test_from_buffer_refuses_other_arrays(bad):
    with pytest.raises(ValueError, match="2-D C-contiguous uint8"):
        PacketPool.from_buffer(bad)
