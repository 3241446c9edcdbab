"""``tailgate pcap info|gen``: inspect a capture, or write a synthetic one."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from tailgate.cli.errors import fail
from tailgate.packet import synth
from tailgate.packet.pcap import PcapError, PcapWriter
from tailgate.packet.pcapinfo import info_lines, pcap_info
from tailgate.packet.pool import PacketPool

pcap_app = typer.Typer(no_args_is_help=True, help="Inspect and generate capture files.")


class Format(str, Enum):
    pcap = "pcap"
    pcapng = "pcapng"


@pcap_app.command("info")
def pcap_info_cmd(
    file: Path = typer.Argument(..., help="a pcap or pcapng capture", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Packets, bytes, timestamps and protocol counts of a capture."""
    try:
        info = pcap_info(str(file))
    except FileNotFoundError:
        raise fail(f"{file}: no such file") from None
    except IsADirectoryError:
        raise fail(f"{file}: is a directory") from None
    except PcapError as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"{file}: {e.strerror}") from None
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        t = Table(show_header=False, box=None, pad_edge=False)
        t.add_column(style="bold")
        t.add_column()
        for label, value in info_lines(info):
            t.add_row(label, value)
        Console(highlight=False).print(t)
    if info["error"]:
        raise fail(f"{info['error']} (reported the {info['packets']} packets before it)", code=1)


@pcap_app.command("gen")
def pcap_gen_cmd(
    out: Path = typer.Argument(..., help="capture file to write", show_default=False),
    packets: int = typer.Option(1000, "--packets", help="packets to write"),
    flows: int = typer.Option(16, "--flows", help="random IPv4 flows"),
    size: str = typer.Option("64", "--size", help="frame bytes (without FCS), or imix"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same file)"),
    rate_pps: float = typer.Option(1e6, "--rate-pps", help="timestamps spaced for this packet rate"),
    proto: str = typer.Option("udp", "--proto", help="udp, tcp or icmp"),
    dst_prefix: Optional[str] = typer.Option(None, "--dst-prefix", help="draw destinations from this prefix"),
    fmt: Format = typer.Option(Format.pcap, "--format", help="pcap or pcapng"),
) -> None:
    """Write a synthetic capture (random flows, valid checksums)."""
    if packets <= 0:
        raise fail(f"--packets must be positive, got {packets}")
    if flows <= 0:
        raise fail(f"--flows must be positive, got {flows}")
    if not rate_pps > 0:
        raise fail(f"--rate-pps must be positive, got {rate_pps}")
    if proto not in ("udp", "tcp", "icmp"):
        raise fail(f"--proto must be udp, tcp or icmp, got {proto!r}")
    if size.strip().lower() == "imix":
        size_dist, size_bytes = synth.IMIX, 64
    else:
        try:
            size_bytes = int(size)
        except ValueError:
            raise fail(f"--size must be a number of bytes or 'imix', got {size!r}") from None
        if not 42 <= size_bytes <= 9000:
            raise fail(f"--size must be in 42..9000 bytes, got {size_bytes}")
        size_dist = None
    try:
        tmpl = synth.random_flows(flows, seed=seed, proto=proto, size_bytes=size_bytes, dst_prefix=dst_prefix)
        # A fixed start time (2024-01-01T00:00:00Z) keeps the file the same for the same seed.
        gen = synth.TrafficGen(tmpl, size_dist=size_dist, rate_pps=rate_pps, seed=seed, start_ns=1_704_067_200 * 10**9)
    except ValueError as e:
        raise fail(str(e)) from None
    pool = PacketPool(n_slots=4096, slot_bytes=max(2048, size_bytes + 128))
    try:
        with PcapWriter(out, format=fmt.value, nanosecond=True) as wr:
            left = packets
            while left:
                n = min(left, 4096)
                b = gen.generate(pool, n)
                wr.write(b)
                b.free()
                left -= n
            written, nbytes = wr.packets_written, wr.bytes_written
    except ValueError as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"{out}: {e.strerror}") from None
    typer.echo(f"wrote {written} packets ({nbytes} bytes, {fmt.value}) to {out}")

