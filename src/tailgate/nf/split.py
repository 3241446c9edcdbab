"""Random splitting: RandomSplit and WeightedRandomSplit (seeded, so runs repeat)."""

from __future__ import annotations

import numpy as np

from tailgate.core.args import Arg, float_list
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module


class RandomSplit(Module):
    """RandomSplit — sends each packet to a uniformly random output gate.

    Gates: 1 in / ``gates`` out. Drop reason: ``random_drop`` (a share ``drop_rate`` of the
    packets, drawn independently). The draws come from ``seed``, so a run repeats exactly.

    Example:

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import RandomSplit
    >>> from tailgate.packet.craft import frame
    >>> split = RandomSplit(gates=2, drop_rate=0.25, seed=1)
    >>> out, _ = drive(split, [frame()] * 100)
    >>> len(out[0]), len(out[1]), split.counter("drops.random_drop")
    (38, 38, 24)

    See also: WeightedRandomSplit, HashSplit (every packet of a flow to one gate).
    """

    drop_reasons = ("random_drop",)
    cost_ns = (30.0, 4.0)
    args = (
        Arg("gates", int, 2, unit="-", help="output gates", min=1, max=1024),
        Arg("drop_rate", float, 0.0, unit="fraction", help="probability that a packet is dropped instead",
            min=0.0, max=1.0),
        Arg("seed", int, 0, unit="-", help="random seed; the same seed gives the same choices"),
    )

    def setup(self) -> None:
        self.n_ogates = self.gates
        self._rng = np.random.default_rng(self.seed)

    def process(self, batch) -> None:
        n = len(batch)
        codes = self._rng.integers(0, self.gates, n, dtype=np.int64)
        if self.drop_rate:
            codes[self._rng.random(n) < self.drop_rate] = -1
        self.emit_codes(batch, codes)


class WeightedRandomSplit(Module):
    """WeightedRandomSplit — sends each packet to gate ``k`` with probability ``weights[k] / sum``.

    Gates: 1 in / ``len(weights)`` out. ``weights`` is a list (``[0.9, 0.1]``) or a string
    (``"9,1"``) of non-negative numbers with a positive sum. Changing the weights while running
    keeps the gate count.

    Example:

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import WeightedRandomSplit
    >>> from tailgate.packet.craft import frame
    >>> split = WeightedRandomSplit(weights="9,1", seed=1)
    >>> out, _ = drive(split, [frame()] * 100)
    >>> len(out[0]), len(out[1])
    (92, 8)

    See also: RandomSplit.
    """

    cost_ns = (30.0, 5.0)
    args = (
        Arg("weights", float_list, unit="-", help="relative share of each output gate, e.g. 9,1"),
        Arg("seed", int, 0, unit="-", help="random seed; the same seed gives the same choices"),
    )

    def setup(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        if len(w) == 0 or (w < 0).any() or w.sum() <= 0:
            raise ArgError(f"{self.label}: argument 'weights' must be non-negative with a positive sum, got {self.weights!r}")
        self.n_ogates = len(w)
        self._cum = np.cumsum(w / w.sum())
        self._cum[-1] = 1.0
        self._rng = np.random.default_rng(self.seed)

    def on_set(self, name: str) -> None:
        if name == "weights":
            w = np.asarray(self.weights, dtype=np.float64)
            if len(w) != self.n_ogates or (w < 0).any() or w.sum() <= 0:
                raise ArgError(f"{self.label}: new weights must be {self.n_ogates} non-negative numbers")
            self._cum = np.cumsum(w / w.sum())
            self._cum[-1] = 1.0

    def process(self, batch) -> None:
        u = self._rng.random(len(batch))
        self.emit_codes(batch, np.searchsorted(self._cum, u, side="right").astype(np.int64))
