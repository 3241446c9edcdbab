"""RateLimiter: a token-bucket policer."""

from __future__ import annotations

import numpy as np

from tailgate.core.args import Arg
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module


class RateLimiter(Module):
    """RateLimiter — token-bucket policer: packets within the rate pass, the excess is dropped.

    Gates: 1 in / 1 out. Drop reason: ``over_rate``. Give exactly one of ``rate_pps`` (tokens are
    packets) or ``rate_bps`` (tokens are bits of frame length). Tokens refill continuously on the
    run's clock up to the bucket depth (``burst_packets`` or ``burst_bits``); the bucket starts
    full. Within a batch, packets pass in order until the tokens run out.

    Example: 1 Mpps with a bucket of 32 packets; 10 us later there are 10 new tokens.

    >>> from tailgate.core.clock import VirtualClock
    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import RateLimiter
    >>> from tailgate.packet.craft import frame
    >>> rl = RateLimiter(rate_pps=1e6, burst_packets=32)
    >>> rl.clock = VirtualClock()           # the runtime sets the clock
    >>> out, _ = drive(rl, [frame()] * 40)
    >>> len(out[0]), rl.counter("drops.over_rate")
    (32, 8)
    >>> rl.clock.advance(10_000)
    >>> out, _ = drive(rl, [frame()] * 40)
    >>> len(out[0])
    10
    """

    drop_reasons = ("over_rate",)
    cost_ns = (30.0, 3.0)
    args = (
        Arg("rate_pps", float, 0.0, unit="pps", help="the rate in packets (or give rate_bps)", min=0),
        Arg("rate_bps", float, 0.0, unit="bit/s", help="the rate in bits of frame length (or give rate_pps)", min=0),
        Arg("burst_packets", float, 32.0, unit="packets", help="bucket depth with rate_pps", min=1),
        Arg("burst_bits", float, 12144.0, unit="bits", help="bucket depth with rate_bps; 12144 = one 1518-byte frame",
            min=1),
    )

    def setup(self) -> None:
        if bool(self.rate_pps) == bool(self.rate_bps):
            raise ArgError(f"{self.label}: give exactly one of rate_pps or rate_bps")
        self._depth = self.burst_packets if self.rate_pps else self.burst_bits
        self._tokens = self._depth
        self._last_ns = None

    def on_set(self, name: str) -> None:
        self._depth = self.burst_packets if self.rate_pps else self.burst_bits
        self._tokens = min(self._tokens, self._depth)

    def process(self, batch) -> None:
        now = self.clock.now_ns()
        if self._last_ns is not None:
            rate = self.rate_pps or self.rate_bps
            self._tokens = min(self._depth, self._tokens + (now - self._last_ns) * rate / 1e9)
        self._last_ns = now
        n = len(batch)
        if self.rate_pps:
            k = min(n, int(self._tokens))
            self._tokens -= k
        else:
            bits = np.cumsum(batch.lengths.astype(np.int64) * 8)
            k = int(np.searchsorted(bits, self._tokens, side="right"))
            if k:
                self._tokens -= float(bits[k - 1])
        if k == n:
            self.emit(batch)
            return
        self.drop(batch.select(slice(k, None)), 0)
        if k:
            self.emit(batch.select(slice(0, k)))
