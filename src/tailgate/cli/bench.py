"""``tailgate bench``: tailgate's own speed against baselines run beside it.

Manual
------
::

    tailgate bench [--suite packet|sched|live|faas|all] [--quick] [--runs N] [--json]
    tailgate bench --markdown [--runs N] [--out DIR|FILE.md] [--readme README.md] [--suite ...] [--quick]

Without ``--markdown`` it prints one table (or, with ``--json``, one JSON list) of the records of
``--runs`` runs (default 1; with more, each record carries its ``run``, 1..N).

``--markdown`` runs the suites ``--runs`` times (default 3) in one process and writes ``bench.md``
(:mod:`tailgate.bench.markdown`: per row the median and the range over the runs, ratios to the
baseline of the same run, the date, the machine and the versions) and ``bench.json`` (every run's
raw records) into ``--out``: by default a fresh ``results/bench-YYYYmmdd-HHMMSS``; ``--out docs/``
updates the committed ``docs/bench.md``. ``--readme README.md`` also copies the tables into that
file's ``<!-- bench:begin ... -->`` block. It prints the Markdown and where it wrote. The committed
numbers come from::

    tailgate bench --markdown --runs 3 --out docs/ --readme README.md
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from tailgate.bench.faas import bench_faas
from tailgate.bench.live import bench_live_records
from tailgate.bench.markdown import block, render, replace_block, summarize
from tailgate.bench.packet import run_bench
from tailgate.bench.provenance import provenance, report_dir
from tailgate.bench.sched import bench_sim
from tailgate.cli.errors import fail
from tailgate.core.errors import TailgateError
from tailgate.run.results import jsonable, versions, write_json

SUITES = ("packet", "sched", "live", "faas")


def bench_cmd(
    as_json: bool = typer.Option(False, "--json", help="print a JSON list"),
    quick: bool = typer.Option(False, "--quick", help="a short run (seconds, not minutes)"),
    suite: str = typer.Option("all", "--suite", help="packet (data plane), sched (simulator), live (server), "
                                                     "faas (FaaS simulator) or all"),
    runs: Optional[int] = typer.Option(None, "--runs", help="run the suites N times in this process "
                                                            "(default: 3 with --markdown, else 1)"),
    markdown: bool = typer.Option(False, "--markdown", help="write bench.md (median and range over the runs) "
                                                            "and bench.json into --out, and print the Markdown"),
    out: Optional[Path] = typer.Option(None, "--out", help="with --markdown: directory for bench.md and bench.json "
                                                           "(default: results/bench-YYYYmmdd-HHMMSS; --out docs/ "
                                                           "updates docs/bench.md), or the .md file itself"),
    readme: Optional[Path] = typer.Option(None, "--readme", help="with --markdown: also copy the tables into this "
                                                                 "file's <!-- bench:begin --> block"),
) -> None:
    """Measure tailgate's own speed against baselines run beside it (dpkt, scapy, SimPy)."""
    if suite not in (*SUITES, "all"):
        raise fail(f"--suite {suite!r}: expected packet, sched, live, faas or all")
    n_runs = runs if runs is not None else (3 if markdown else 1)
    if n_runs < 1:
        raise fail(f"--runs {n_runs}: expected a whole number of runs >= 1")
    if not markdown and (out is not None or readme is not None):
        raise fail(f"{'--out' if out is not None else '--readme'} writes the Markdown file: it needs --markdown")
    if markdown and as_json:
        raise fail("--markdown and --json: pick one (--markdown writes bench.json beside bench.md)")
    md = None
    if markdown:
        md = (report_dir("bench") / "bench.md") if out is None else (out if out.suffix == ".md" else out / "bench.md")
        if md.parent.exists() and not md.parent.is_dir():
            raise fail(f"--out {out}: {md.parent} exists and is not a directory")
        if readme is not None:
            _readme_text(readme)   # a missing file or block is refused before minutes of measuring
    chosen = SUITES if suite == "all" else (suite,)
    ran = provenance()
    t0 = time.perf_counter()
    all_runs = [_one_run(chosen, quick, k, n_runs) for k in range(1, n_runs + 1)]
    elapsed_s = time.perf_counter() - t0
    if md is not None:
        command = _command(suite, quick, n_runs, out, readme)
        _write_markdown(md, readme, all_runs, command, ran, elapsed_s)
        return
    records = [r if n_runs == 1 else {**r, "run": k} for k, recs in enumerate(all_runs, 1) for r in recs]
    if as_json:
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



def _one_run(chosen: tuple[str, ...], quick: bool, k: int, n_runs: int) -> list[dict]:
    """Every chosen suite once: run ``k`` of ``n_runs``, a line per suite on stderr when there are several runs."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    records: list[dict] = []
    for name in chosen:
        t = time.perf_counter()
        try:
            if name == "packet":
                records += run_bench(quick=quick)
            elif name == "sched":
                records += bench_sim(quick=quick)
            elif name == "faas":
                records += bench_faas(quick=quick)
            else:
                records += bench_live_records(quick=quick)
        except TailgateError as e:
            raise fail(f"bench --suite {name}: {e}") from None
        except ImportError as e:
            raise fail(f"bench --suite {name} needs {e.name or e} (pip install 'tailgate[bench]')") from None
        except OSError as e:
            raise fail(f"bench --suite {name}: {e.strerror or e}") from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        if n_runs > 1:
            err.print(f"run {k}/{n_runs}: {name} in {time.perf_counter() - t:.1f} s", markup=False)
    return records


def _command(suite: str, quick: bool, n_runs: int, out: Path | None, readme: Path | None) -> str:
    """The command line that makes this file again (options in a fixed order)."""
    words = ["tailgate", "bench", "--markdown", "--runs", str(n_runs)]
    if suite != "all":
        words += ["--suite", suite]
    if quick:
        words.append("--quick")
    if out is not None:
        words += ["--out", str(out) + ("/" if out.suffix != ".md" and not str(out).endswith("/") else "")]
    if readme is not None:
        words += ["--readme", str(readme)]
    return shlex.join(words)


def _readme_text(readme: Path) -> str:
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise fail(f"--readme {readme}: {getattr(e, 'strerror', None) or e}") from None
    try:
        block(text, str(readme))
    except TailgateError as e:
        raise fail(f"--readme {e}") from None
    return text


def _write_markdown(md: Path, readme: Path | None, all_runs: list[list[dict]], command: str, ran: dict,
                    elapsed_s: float) -> None:
    vers = versions()
    text = render(all_runs, command=command, ran=ran, versions=vers, elapsed_s=elapsed_s)
    raw = md.with_suffix(".json")
    try:
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(text, encoding="utf-8")
        write_json(raw, {"command": command, "ran": ran, "versions": vers, "elapsed_s": elapsed_s,
                         "runs": jsonable(all_runs), "rows": summarize(all_runs)})
        if readme is not None:
            readme.write_text(replace_block(_readme_text(readme), block(text), str(readme)), encoding="utf-8")
    except OSError as e:
        raise fail(f"bench --markdown into {md.parent}: {e.strerror or e}") from None
    c = Console(highlight=False, soft_wrap=True)
    c.print(text, markup=False)
    c.print(f"wrote: {md} and {raw.name} beside it" + (f"; the tables into {readme}" if readme else ""),
            markup=False)
