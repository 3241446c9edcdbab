"""Shared fixtures: a fresh pipeline per test, a small pool, crafted frames."""

import numpy as np
import pytest

from tailgate.core.args import Arg
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.module import Module
from tailgate.packet.pool import PacketPool


@pytest.fixture
def pipeline():
    with Pipeline() as p:
        yield p


@pytest.fixture
def pool():
    return PacketPool(n_slots=4096)


def udp_frame(src="10.0.0.1", dst="10.0.0.2", sport=1000, dport=2000, payload=b"x" * 18, ttl=64) -> bytes:
    """A valid Ethernet/IPv4/UDP frame built with dpkt (an independent builder)."""
    import socket

    import dpkt

    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=17, ttl=ttl, data=udp)
    ip.len = 20 + len(bytes(udp))
    eth = dpkt.ethernet.Ethernet(dst=b"\x02\x00\x00\x00\x00\x02", src=b"\x02\x00\x00\x00\x00\x01", type=0x0800, data=ip)
    return bytes(eth)


class FrameSource(Module):
    """Test-only task root: emits the given frames, ``burst`` at a time, then is exhausted."""

    n_igates = 0
    task_root = True
    args = (Arg("frames", lambda v: list(v)), Arg("repeat", int, 1))

    def setup(self):
        self.sent = 0

    def run_task(self, burst):
        total = len(self.frames) * self.repeat
        n = min(burst, total - self.sent)
        if n <= 0:
            return 0
        frames = [self.frames[(self.sent + k) % len(self.frames)] for k in range(n)]
        b = self.pool.from_frames(frames, arrival_ns=self.clock.now_ns())
        b.flow_id = np.arange(self.sent, self.sent + n) % len(self.frames)
        self.sent += n
        self.emit(b)
        return n

    def exhausted(self):
        return self.sent >= len(self.frames) * self.repeat


@pytest.fixture
def frame_source():
    return FrameSource


@pytest.fixture(name="udp_frame")
def _udp_frame_fixture():
    return udp_frame
