"""The pure pool's discard (a sandbox that died or failed to start) frees its place under the bounds."""

from tailgate.faas.strategies import Pool


def test_a_discarded_sandbox_frees_its_place():
    pool = Pool(max_per_function=1, max_total=1)
    sid, cold = pool.acquire(0, now_s=0.0)
    assert cold and pool.acquire(0, now_s=0.0) is None  # at the bound
    pool.discard(0, sid)
    assert (pool.live_total, pool.live[0], pool.destroyed) == (0, 0, 1)
    sid2, cold2 = pool.acquire(0, now_s=1.0)
    assert cold2 and sid2 != sid
