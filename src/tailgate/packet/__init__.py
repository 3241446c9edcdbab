"""Packets: the slot pool, batches, protocol views, checksums, addresses, pcap and synthetic traffic."""
from tailgate.packet.pool import (
    DEFAULT_BURST,
    DEFAULT_HEADROOM_BYTES,
    DEFAULT_SLOT_BYTES,
    N_ANNOTATIONS,
    Batch,
    PacketPool,
    PoolExhausted,
)

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_HEADROOM_BYTES",
    "DEFAULT_SLOT_BYTES",
    "N_ANNOTATIONS",
    "Batch",
    "PacketPool",
    "PoolExhausted",
]
