"""PcapSource replays what a lenient reader reads, counts it, and names it in the run's warnings."""

import struct

from tailgate.core.clock import VirtualClock
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.runtime import Runtime
from tailgate.nf import PcapSource, Sink
from tailgate.run.results import warnings_of


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _idb(linktype: int, snaplen: int) -> bytes:
    return _block(1, struct.pack("<HHI", linktype, 0, snaplen))


def _epb(iface: int, data: bytes) -> bytes:
    return _block(6, struct.pack("<IIIII", iface, 0, 7, len(data), len(data)) + data)


def test_over_snaplen_and_other_link_types_are_counted_and_warned(tmp_path):
    path = tmp_path / "mixed.pcapng"
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    path.write_bytes(shb + _idb(1, 50) + _epb(0, b"a" * 60) + _epb(0, b"b" * 40) + _idb(113, 0) + _epb(1, b"c" * 60))
    with Pipeline() as p:
        src = PcapSource(path=str(path), loops=2)
        sink = src >> Sink()
    Runtime(p, VirtualClock()).run()
    assert (src.sent, sink.packets_in, src.error) == (4, 4, None)
    c = src.counters()
    assert (c["longer_than_snaplen"], c["skipped_not_ethernet"], c["capture_errors"]) == (2, 2, 0)
    assert warnings_of(p) == [
        f"{src.label}: {path}: 2 records longer than the snap length, replayed whole",
        f"{src.label}: {path}: 2 packets on non-Ethernet interfaces skipped",
    ]
