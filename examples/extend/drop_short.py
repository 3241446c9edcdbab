"""A new network function, defined in a script: DropShort drops frames shorter than a minimum.

    tailgate run examples/extend/drop_short.py --clock virtual
"""
import numpy as np

from tailgate.core.args import Arg
from tailgate.dataplane.module import Module


class DropShort(Module):
    """DropShort — drops frames shorter than ``min_bytes`` (runts). Gates: 1 in / 1 out."""

    drop_reasons = ("too_short",)
    args = (Arg("min_bytes", int, 64, unit="bytes", help="shortest frame let through", min=0),)
    cost_ns = (20.0, 1.0)  # T0 ns per batch, T1 ns per frame: what the virtual clock charges

    def process(self, batch) -> None:
        codes = np.where(batch.lengths < self.min_bytes, -1, 0)  # -1: drop reason 0, too_short
        self.emit_codes(batch, codes)


src = Source(packets=get_arg("packets", 10_000, int), size_dist="uniform:60:68", seed=1)
src >> DropShort("runts", min_bytes=get_arg("min_bytes", 64, int)) >> Sink("sink")
