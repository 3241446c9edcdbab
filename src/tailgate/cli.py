"""The ``tailgate`` command.

Manual
------
::

    tailgate run SCRIPT [k=v ...] [--clock wall|virtual] [--out DIR] [--burst N]
                                  [--seconds S] [--packets N] [--quiet]
    tailgate pcap info FILE [--json]
    tailgate pcap gen OUT [--packets N] [--flows N] [--size BYTES|imix] [--seed S]
                          [--rate-pps R] [--format pcap|pcapng]
    tailgate modules [NAME]
    tailgate bench [--json] [--quick] [--suite packet|sched|live|all]
    tailgate sched sim|policies ...      (see tailgate.cli_sched)

Every user error (a bad argument, a graph that does not connect, a capture that is not one) is
one line ``error: ...`` on stderr and exit code 2, never a traceback. A capture damaged part-way
is used up to the damage and reported (by ``pcap info``; by ``run`` as a warning) with exit
code 1. Ctrl-C stops a run, still writes its results directory, and exits with 130.
"""

from __future__ import annotations

import inspect
import json
import re
import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tailgate.core.errors import TailgateError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="tailgate: batched packet processing under latency objectives, measured honestly.",
)
pcap_app = typer.Typer(no_args_is_help=True, help="Inspect and generate capture files.")
app.add_typer(pcap_app, name="pcap")

EXIT_USER_ERROR = 2
EXIT_DAMAGED_INPUT = 1  # the input was damaged part-way; results hold what came before
EXIT_INTERRUPTED = 130


def _err(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    """Print ``error: message`` on stderr; returns the Exit to raise."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {message}", markup=False)
    return typer.Exit(code)


class ClockName(str, Enum):
    wall = "wall"
    virtual = "virtual"


class Format(str, Enum):
    pcap = "pcap"
    pcapng = "pcapng"


def _setup_logging(quiet: bool, console: Console) -> None:
    from rich.logging import RichHandler

    logger = logging.getLogger("tailgate")
    for h in list(logger.handlers):
        if getattr(h, "_tailgate_cli", False):
            logger.removeHandler(h)
    handler = RichHandler(console=console, show_path=False, show_time=False, markup=False)
    handler._tailgate_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


# ------------------------------------------------------------------------------------------------
# run
# ------------------------------------------------------------------------------------------------
@app.command(context_settings={"allow_interspersed_args": True})
def run(
    script: Path = typer.Argument(..., help="the pipeline script (Python)", show_default=False),
    args: Optional[list[str]] = typer.Argument(None, help="script arguments: k=v words or 'a=1,b=2'"),
    clock: ClockName = typer.Option(ClockName.wall, "--clock", help="wall time, or virtual time (modeled costs)"),
    out: Optional[Path] = typer.Option(None, "--out", help="results directory (default: results/SCRIPT-YYYYmmdd-HHMMSS)"),
    burst: int = typer.Option(32, "--burst", help="packets a task root produces per round"),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="stop after this much clock time"),
    packets: Optional[int] = typer.Option(None, "--packets", help="stop after this many packets"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no live view, no final table"),
    loglevel: Optional[str] = typer.Option(None, "--loglevel", help="DEBUG, INFO (default) or WARNING"),
) -> None:
    """Run a pipeline script and write its results directory."""
    from tailgate.live import LiveView, final_table
    from tailgate.script import ScriptRun

    err_console = Console(stderr=True)
    _setup_logging(quiet, err_console)
    if loglevel is not None:
        level = logging.getLevelName(loglevel.upper())
        if not isinstance(level, int):
            raise _err(f"--loglevel must be DEBUG, INFO or WARNING, got {loglevel!r}")
        logging.getLogger("tailgate").setLevel(level)
    view = LiveView(err_console, enabled=(not quiet) and err_console.is_terminal)
    try:
        sr = ScriptRun(
            script,
            list(args or []),
            clock=clock.value,
            burst=burst,
            seconds=seconds,
            packets=packets,
            out_dir=out,
            view=view,
        )
    except TailgateError as e:
        raise _err(str(e)) from None
    code, error = 0, None
    try:
        sr.execute()
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        err_console.print("interrupted", style="yellow")
    except TailgateError as e:
        code, error = EXIT_USER_ERROR, str(e)
    if sr.runtime is not None and sr.results_written:
        out_console = Console(highlight=False)
        if not quiet:
            out_console.print(final_table(sr.runtime, sr.stop_reason))
        # Warnings (a capture damaged part-way, ...) show even with --quiet, and make the exit
        # code 1 as `pcap info` does: the results hold what came before the damage.
        warnings = (sr.summary or {}).get("warnings", [])
        for w in warnings:
            err_console.print(f"warning: {w}", style="yellow", markup=False, highlight=False, soft_wrap=True)
        if warnings and not code:
            code = EXIT_DAMAGED_INPUT
        out_console.print(f"results: {sr.out_dir}", markup=False)
    if error is not None:
        raise _err(error)  # last, so that it is the line a reader sees
    if code:
        raise typer.Exit(code)


# ------------------------------------------------------------------------------------------------
# pcap info / gen
# ------------------------------------------------------------------------------------------------
@pcap_app.command("info")
def pcap_info_cmd(
    file: Path = typer.Argument(..., help="a pcap or pcapng capture", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Packets, bytes, timestamps and protocol counts of a capture."""
    from tailgate.packet.pcap import PcapError
    from tailgate.pcapinfo import info_lines, pcap_info

    try:
        info = pcap_info(str(file))
    except FileNotFoundError:
        raise _err(f"{file}: no such file") from None
    except IsADirectoryError:
        raise _err(f"{file}: is a directory") from None
    except PcapError as e:
        raise _err(str(e)) from None
    except OSError as e:
        raise _err(f"{file}: {e.strerror}") from None
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
        raise _err(f"{info['error']} (reported the {info['packets']} packets before it)", code=1)


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
    from tailgate.packet import synth
    from tailgate.packet.pcap import PcapWriter
    from tailgate.packet.pool import PacketPool

    if packets <= 0:
        raise _err(f"--packets must be positive, got {packets}")
    if flows <= 0:
        raise _err(f"--flows must be positive, got {flows}")
    if not rate_pps > 0:
        raise _err(f"--rate-pps must be positive, got {rate_pps}")
    if proto not in ("udp", "tcp", "icmp"):
        raise _err(f"--proto must be udp, tcp or icmp, got {proto!r}")
    if size.strip().lower() == "imix":
        size_dist, size_bytes = synth.IMIX, 64
    else:
        try:
            size_bytes = int(size)
        except ValueError:
            raise _err(f"--size must be a number of bytes or 'imix', got {size!r}") from None
        if not 42 <= size_bytes <= 9000:
            raise _err(f"--size must be in 42..9000 bytes, got {size_bytes}")
        size_dist = None
    try:
        tmpl = synth.random_flows(flows, seed=seed, proto=proto, size_bytes=size_bytes, dst_prefix=dst_prefix)
        # A fixed start time (2024-01-01T00:00:00Z) keeps the file the same for the same seed.
        gen = synth.TrafficGen(tmpl, size_dist=size_dist, rate_pps=rate_pps, seed=seed, start_ns=1_704_067_200 * 10**9)
    except ValueError as e:
        raise _err(str(e)) from None
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
        raise _err(str(e)) from None
    except OSError as e:
        raise _err(f"{out}: {e.strerror}") from None
    typer.echo(f"wrote {written} packets ({nbytes} bytes, {fmt.value}) to {out}")


# ------------------------------------------------------------------------------------------------
# modules
# ------------------------------------------------------------------------------------------------
def _summary_line(cls: type) -> str:
    """The first sentence of a class's manual, without its name and without reST quoting."""
    doc = inspect.getdoc(cls) or ""
    para = " ".join(doc.strip().split("\n\n", 1)[0].split())
    name = cls.__name__
    for sep in (" — ", " - ", ": "):
        if para.startswith(name + sep):
            para = para[len(name) + len(sep) :]
            break
    m = re.match(r"(.+?\.)(\s|$)", para)
    return (m.group(1) if m else para).replace("``", "")


def _arg_rows(cls: type) -> list[tuple[str, str, str, str, str]]:
    from tailgate.core.args import REQUIRED

    rows = []
    for a in getattr(cls, "args", ()):
        tname = getattr(a.type, "__name__", str(a.type))
        if tname == "any_value":
            tname = "any"
        default = "required" if a.default is REQUIRED else repr(a.default)
        rng = []
        if a.min is not None:
            rng.append(f">= {a.min:g}")
        if a.max is not None:
            rng.append(f"<= {a.max:g}")
        if a.choices is not None:
            rng.append("one of " + ", ".join(map(str, a.choices)))
        rows.append((a.name, tname, default, a.unit, "; ".join([a.help] if a.help else []) + (" (" + ", ".join(rng) + ")" if rng else "")))
    return rows


@app.command("modules")
def modules_cmd(name: Optional[str] = typer.Argument(None, help="a module class: print its manual")) -> None:
    """List the network functions, or print one's manual and arguments."""
    import difflib

    from tailgate import nf

    reg = nf.registry()
    console = Console(highlight=False)
    if name is None:
        t = Table(box=None, pad_edge=False, header_style="bold")
        t.add_column("module")
        t.add_column("summary")
        for n in sorted(reg):
            t.add_row(n, escape(_summary_line(reg[n])))
        console.print(t)
        return
    cls = reg.get(name) or {k.lower(): v for k, v in reg.items()}.get(name.lower())
    if cls is None:
        close = difflib.get_close_matches(name, list(reg), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f" (modules: {', '.join(sorted(reg))})"
        raise _err(f"unknown module {name!r}{hint}")
    console.print(f"[bold]{cls.__name__}[/bold]  ({cls.__module__})")
    console.print(inspect.getdoc(cls) or "(no manual)", markup=False, soft_wrap=True)
    rows = _arg_rows(cls)
    console.print()
    if rows:
        t = Table(title="arguments", title_justify="left", box=None, pad_edge=False, header_style="bold")
        for col in ("name", "type", "default", "unit", "help"):
            t.add_column(col)
        for r in rows:
            t.add_row(*map(escape, r))
        console.print(t)
    else:
        console.print("arguments: none")
    extras = []
    if getattr(cls, "drop_reasons", ()):
        extras.append("drop reasons: " + ", ".join(cls.drop_reasons))
    cost = getattr(cls, "cost_ns", None)
    if cost is not None and not isinstance(cost, property):
        extras.append(f"modeled cost: T0={cost[0]:g} ns + T1={cost[1]:g} ns per packet")
    if getattr(cls, "task_root", False):
        extras.append("task root (owns a task)")
    for e in extras:
        console.print(e, markup=False)


# ------------------------------------------------------------------------------------------------
# bench
# ------------------------------------------------------------------------------------------------
@app.command("bench")
def bench_cmd(
    as_json: bool = typer.Option(False, "--json", help="print a JSON list"),
    quick: bool = typer.Option(False, "--quick", help="a short run (seconds, not minutes)"),
    suite: str = typer.Option("all", "--suite", help="packet (data plane), sched (simulator), live (server) or all"),
) -> None:
    """Measure tailgate's own speed against baselines run beside it (dpkt, scapy, SimPy)."""
    if suite not in ("packet", "sched", "live", "all"):
        raise _err(f"--suite {suite!r}: expected packet, sched, live or all")
    try:
        from tailgate.bench import run_bench
        from tailgate.dispatch.bench import bench_live_records, bench_sim
    except ImportError as e:
        raise _err(f"the benchmark is not available: {e}") from None
    try:
        records = run_bench(quick=quick) if suite in ("packet", "all") else []
        records += bench_sim(quick=quick) if suite in ("sched", "all") else []
        records += bench_live_records(quick=quick) if suite in ("live", "all") else []
    except TailgateError as e:
        raise _err(str(e)) from None
    if as_json:
        from tailgate.results import jsonable

        typer.echo(json.dumps(jsonable(list(records)), indent=2))
        return
    cols: list[str] = []
    for r in records:
        for k in r:
            if k not in cols:
                cols.append(k)
    t = Table(box=None, pad_edge=False, header_style="bold")
    for c in cols:
        t.add_column(c, justify="left" if c in ("name", "bench", "case", "what", "unit") else "right")
    for r in records:
        t.add_row(*(_fmt_cell(r.get(c)) for c in cols))
    Console(highlight=False).print(t)


def _fmt_cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


# ------------------------------------------------------------------------------------------------
# sched (request scheduling) lives in its own module
# ------------------------------------------------------------------------------------------------
from tailgate.cli_sched import sched_app  # noqa: E402  (after _err, which it uses)

app.add_typer(sched_app, name="sched")

from tailgate.cli_batchy import batchy_app  # noqa: E402

app.add_typer(batchy_app, name="batchy")

from tailgate.cli_profile import profile_cmd  # noqa: E402

app.command("profile")(profile_cmd)


# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tailgate`` command."""
    try:
        app(args=argv, prog_name="tailgate", standalone_mode=True)
    except SystemExit as e:
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except TailgateError as e:  # pragma: no cover - commands catch their own
        _err(str(e))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
