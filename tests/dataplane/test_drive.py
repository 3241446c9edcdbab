from tailgate.dataplane.drive import drive
from tailgate.nf import RandomSplit


def test_drive_returns_frames_per_gate(pipeline, udp_frame):
    frames = [udp_frame(sport=p) for p in range(50)]
    split = RandomSplit(gates=2, drop_rate=0.2, seed=4)
    out, pool = drive(split, frames)
    kept = out.get(0, []) + out.get(1, [])
    assert len(kept) + split.counter("drops.random_drop") == 50
    assert set(kept) <= set(frames)
    # Outputs stay allocated for the caller; the drops went back to the pool.
    assert pool.n_used == len(kept)
