"""Crafted frames: one valid frame from a flow's fields, for manuals, selftests and scripts.

Manual
------
``frame(**fields) -> bytes`` builds one Ethernet frame from the fields of a
:class:`~tailgate.packet.synth.FlowTemplate` (``src_mac``, ``dst_mac``, ``src_ip``, ``dst_ip``,
``proto``, ``sport``, ``dport``, ``vlan``, ``ttl``, ``size_bytes``); a field left out takes the
template's default (IPv4/UDP 10.0.0.1:1024 -> 10.0.0.2:5001, TTL 64, 64 bytes). The frame is the
first packet :class:`~tailgate.packet.synth.TrafficGen` makes for that flow, so its lengths and
IPv4, UDP, TCP and ICMP checksums are right and the same fields always give the same bytes. A bad
field raises ``ValueError`` naming it. Every network function's manual example feeds such frames
to the module with :func:`tailgate.dataplane.drive.drive`.

Example:

>>> from tailgate.packet.craft import frame
>>> f = frame(dst_ip="192.0.2.7", ttl=9)
>>> len(f), f[14 + 8]                       # 64 bytes; the TTL sits 8 bytes into the IPv4 header
(64, 9)
>>> len(frame(vlan=100, src_ip="fd00::1", dst_ip="fd00::2", proto="tcp", size_bytes=90))
90
"""

from __future__ import annotations

from tailgate.packet.pool import PacketPool
from tailgate.packet.synth import FlowTemplate, TrafficGen

__all__ = ["frame"]


def frame(**fields) -> bytes:
    """One valid Ethernet frame of the flow ``FlowTemplate(**fields)`` (see the module manual)."""
    flow = FlowTemplate(**fields)
    # a pool of one slot wide enough for the largest frame a template allows
    pool = PacketPool(n_slots=1, slot_bytes=max(2048, flow.size_bytes + 256))
    return TrafficGen([flow]).generate(pool, 1).frame(0)
