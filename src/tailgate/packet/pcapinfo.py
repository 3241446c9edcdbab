"""``tailgate pcap info``: what a capture holds, counted batch by batch.

Manual
------
:func:`pcap_info` reads a capture with :class:`~tailgate.packet.pcap.PcapReader` a few thousand
packets at a time, parses each batch once (``batch.headers``) and adds up numpy masks — no Python
per packet. It reports packets, captured bytes (as in the file), wire bytes (original lengths),
the first and last timestamp (of the first and last packet in file order), the duration (latest
minus earliest timestamp), link type, format, timestamp resolution and counts per protocol:

=========  ==================================================================================
ipv4/ipv6  a complete IPv4 / IPv6 header (also when a length field is then found bad)
vlan       at least one VLAN tag
tcp/udp    a complete TCP / UDP header (IPv4 or IPv6); ``icmp`` counts ICMP and ICMPv6
other      neither IPv4 nor IPv6, and not malformed (ARP, LLDP, ...)
malformed  a malformed frame (truncated headers, bad IHL, bad lengths: ``proto.MALFORMED_REASONS``)
=========  ==================================================================================

``malformed_reasons`` splits the malformed count by reason. ``longer_than_snaplen`` counts records
whose captured length exceeds the snap length (read whole, as Wireshark does) and
``skipped_not_ethernet`` the packets of a pcapng's later non-Ethernet interfaces (not read); the
report prints a warning line for each that is not 0.

A capture that cannot be opened (not a capture, unknown link type) raises
:class:`~tailgate.packet.pcap.PcapError`. A capture damaged part-way (a truncated last record, a
corrupt block) is reported up to the damage, with ``error`` holding the reader's message, which
names the file and the byte offset.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from tailgate.packet.pcap import PcapError, PcapReader
from tailgate.packet.pool import PacketPool
from tailgate.packet.proto import MALFORMED_REASONS

_BATCH = 4096
_PROTOS = ("ipv4", "ipv6", "vlan", "tcp", "udp", "icmp", "other", "malformed")


def pcap_info(path: str, batch: int = _BATCH) -> dict[str, Any]:
    """Counts for one capture (see the module manual). Raises PcapError if it cannot be opened."""

    pool = PacketPool(n_slots=batch)
    counts = dict.fromkeys(_PROTOS, 0)
    mal_reasons = np.zeros(len(MALFORMED_REASONS), dtype=np.int64)
    packets = wire_bytes = 0
    first_ts = last_ts = min_ts = max_ts = None
    error: PcapError | None = None
    with PcapReader(path) as rd:
        info: dict[str, Any] = {
            "file": str(path),
            "format": rd.format,
            "linktype": rd.linktype,
            "snaplen": rd.snaplen,
            "ts_resolution_ns": rd.ts_resolution_ns,
        }
        while True:
            try:
                b = rd.read(pool, batch)
            except PcapError as e:
                error = e
                break
            n = len(b)
            if n == 0:
                break
            hv = b.headers
            ip4, ip6, mal = hv.is_ipv4, hv.is_ipv6, hv.is_malformed
            counts["ipv4"] += int(np.count_nonzero(ip4))
            counts["ipv6"] += int(np.count_nonzero(ip6))
            counts["vlan"] += int(np.count_nonzero(hv.is_vlan))
            counts["tcp"] += int(np.count_nonzero(hv.is_tcp))
            counts["udp"] += int(np.count_nonzero(hv.is_udp))
            counts["icmp"] += int(np.count_nonzero(hv.is_icmp))
            counts["malformed"] += int(np.count_nonzero(mal))
            counts["other"] += int(np.count_nonzero(~(ip4 | ip6 | mal)))
            mal_reasons += np.bincount(hv.malformed, minlength=len(MALFORMED_REASONS))[: len(MALFORMED_REASONS)]
            ts = b.arrival_ns
            if first_ts is None:
                first_ts, min_ts, max_ts = int(ts[0]), int(ts.min()), int(ts.max())
            else:
                min_ts, max_ts = min(min_ts, int(ts.min())), max(max_ts, int(ts.max()))
            last_ts = int(ts[-1])
            wire_bytes += int(b.wire_lens.astype(np.int64).sum())
            packets += n
            b.free()
        if error is None and rd.error is not None:
            error = rd.error
        info.update(
            packets=packets,
            bytes=int(rd.bytes_read),
            wire_bytes=wire_bytes,
            first_ts_ns=first_ts,
            last_ts_ns=last_ts,
            first_ts=_iso(first_ts),
            last_ts=_iso(last_ts),
            duration_s=(max_ts - min_ts) / 1e9 if packets else 0.0,
            protocols=counts,
            malformed_reasons={
                MALFORMED_REASONS[k]: int(v) for k, v in enumerate(mal_reasons) if k and v
            },
            clipped_to_slot=int(rd.truncated_to_slot),
            longer_than_snaplen=int(rd.longer_than_snaplen),
            skipped_not_ethernet=int(rd.skipped_not_ethernet),
            error=str(error) if error is not None else None,
            error_offset=error.offset if error is not None else None,
        )
    return info


def _iso(ts_ns: int | None) -> str | None:
    if ts_ns is None:
        return None
    s, ns = divmod(ts_ns, 1_000_000_000)
    try:
        t = _dt.datetime.fromtimestamp(s, tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def info_lines(info: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for the human-readable report."""
    rows = [
        ("file", info["file"]),
        ("format", f"{info['format']} (timestamps {info['ts_resolution_ns']:g} ns)"),
        ("link type", f"{info['linktype']} (Ethernet)" if info["linktype"] == 1 else str(info["linktype"])),
        ("packets", f"{info['packets']:,}"),
        ("bytes", f"{info['bytes']:,} captured, {info['wire_bytes']:,} on the wire"),
        ("first", f"{info['first_ts'] or '-'}"),
        ("last", f"{info['last_ts'] or '-'}"),
        ("duration", f"{info['duration_s']:.6f} s"),
    ]
    p = info["protocols"]
    rows.append(("protocols", "  ".join(f"{k} {p[k]:,}" for k in _PROTOS)))
    if info["malformed_reasons"]:
        rows.append(("malformed", "  ".join(f"{k} {v:,}" for k, v in info["malformed_reasons"].items())))
    if info["longer_than_snaplen"]:
        n_over = info["longer_than_snaplen"]
        rows.append(("warning", f"{n_over:,} records are longer than the snap length (read whole)"))
    if info["skipped_not_ethernet"]:
        rows.append(("warning", f"{info['skipped_not_ethernet']:,} packets on non-Ethernet interfaces were skipped"))
    if info["clipped_to_slot"]:
        rows.append(("note", f"{info['clipped_to_slot']} frames longer than a pool slot were counted clipped"))
    return rows
