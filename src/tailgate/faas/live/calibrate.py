"""Kraken's calibration from a live Vanilla run: per function the SLO, mean exec and logged loads.

Manual
------
Kraken needs, per function, what Vanilla did with the same functions (reference §6): its SLO (a
quantile, ``slo_quantile``, default 0.98, of schedule + cold start + exec), its mean exec (the
batch size is ⌊SLO / mean exec⌋) and, for the *perfect* load predictor, the size of each of
Vanilla's dispatches in order. The simulator takes them from a simulated Vanilla run
(:func:`tailgate.faas.sim.kraken_calibration`); this module takes them from a live one, the
``--out`` directory of ``tailgate faas serve --strategy vanilla``::

    cal = calibrate_from_run("results/vanilla", {"fib": 0, "s3io": 1}, quantile=0.98)
    kraken = make_strategy("kraken", predictor="perfect")
    kraken.calibrate(*cal.args(), source=cal.source)

``functions`` maps each name of the manifest being served to its index there: the run's rows are
matched by function *name*, so the two manifests may order (or hold) other functions differently.
What it reads from the run directory:

``summary.json``
    its ``strategy`` must be ``vanilla`` (a run of another strategy is refused);
    ``dispatch_interval_s`` is kept as :attr:`LiveCalibration.interval_s`.
``invocations.csv``
    only ``completed`` rows count: SLO = the quantile of ``schedule_s + cold_start_s + exec_s``
    (numpy's linear interpolation, as the simulator), mean exec = the mean of ``exec_s``.
``batches.csv``
    one row per dispatch in the order they happened; per function, the ``invocations`` column in
    file order is the load log the perfect predictor replays (``need_loads=False``, the EWMA
    predictor's case, does without the file).

Every refusal is a :class:`CalibrationError` of one line naming the directory or file (and the
line of a malformed CSV row): the directory or a file missing, ``summary.json`` not of a vanilla
run, a served function with no completed invocation in the run (named), a row whose fields are
not what the header says or whose numbers do not parse (``invocations.csv:7: exec_s: ...``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from tailgate.core.errors import TailgateError
from tailgate.faas.live.gateway import STATUS_HTTP

#: The columns of invocations.csv and batches.csv a calibration reads.
INVOCATION_NEEDS = ("function", "status", "schedule_s", "cold_start_s", "exec_s")
BATCH_NEEDS = ("function", "invocations")
HOW = "the --out of `tailgate faas serve --strategy vanilla` over the same functions"


class CalibrationError(TailgateError):
    """A run directory Kraken cannot be calibrated from: one line naming the file."""


@dataclass
class LiveCalibration:
    """What :meth:`tailgate.faas.strategies.Kraken.calibrate` takes, keyed by the served manifest's index."""

    source: str                                            # the run directory
    slo_s: dict[int, float]
    mean_exec_s: dict[int, float]
    loads: dict[int, list[int]] = field(default_factory=dict)  # invocations of each dispatch, in order
    completed: dict[int, int] = field(default_factory=dict)    # completed invocations used per function
    interval_s: float | None = None                        # Vanilla's dispatch interval, when summary.json says

    def args(self) -> tuple[dict, dict, dict]:
        """``(slo_s, mean_exec_s, loads)``: the positional arguments of ``Kraken.calibrate``."""
        return self.slo_s, self.mean_exec_s, self.loads


def _rows(path: Path, needs: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(first line number, row) of a CSV file whose header holds ``needs``; a ragged row is refused."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            yield from _parse(path, f, needs)
    except FileNotFoundError:
        raise CalibrationError(f"{path}: missing (Kraken calibrates from {HOW})") from None
    except UnicodeDecodeError as e:
        raise CalibrationError(f"{path}: not text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise CalibrationError(f"{path}: cannot read ({e.strerror or e})") from None


def _parse(path: Path, f: TextIO, needs: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    reader = csv.reader(f)
    try:
        header = next(reader, None)
        if header is None:
            raise CalibrationError(f"{path}:1: empty file (expected a header with {', '.join(needs)})")
        lost = [c for c in needs if c not in header]
        if lost:
            raise CalibrationError(f"{path}:1: header lacks {', '.join(lost)} (expected {', '.join(needs)})")
        line = reader.line_num + 1
        for fields in reader:
            if not fields:  # a blank line
                line = reader.line_num + 1
                continue
            if len(fields) != len(header):
                raise CalibrationError(f"{path}:{line}: {len(fields)} fields, the header has {len(header)}")
            yield line, dict(zip(header, fields))
            line = reader.line_num + 1
    except csv.Error as e:
        raise CalibrationError(f"{path}:{reader.line_num}: not CSV ({e})") from None


def _seconds(path: Path, line: int, row: dict, col: str) -> float:
    raw = row[col]
    try:
        v = float(raw)
    except ValueError:
        raise CalibrationError(f"{path}:{line}: {col}: {raw!r} is not a number of seconds") from None
    if not (math.isfinite(v) and v >= 0):
        raise CalibrationError(f"{path}:{line}: {col}: {raw!r} must be a finite number of seconds >= 0")
    return v


def _strategy_of(path: Path) -> tuple[str, float | None]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"{path}: missing (Kraken calibrates from {HOW})") from None
    except OSError as e:
        raise CalibrationError(f"{path}: cannot read ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{path}: not JSON ({e})") from None
    strat = doc.get("strategy") if isinstance(doc, dict) else None
    if isinstance(strat, dict):
        name, di = strat.get("strategy", strat.get("name")), strat.get("dispatch_interval_s")
    else:
        name, di = strat, None
    if not isinstance(name, str):
        raise CalibrationError(f"{path}: names no strategy (expected a gateway's summary.json: {HOW})")
    return name, (float(di) if isinstance(di, (int, float)) and not isinstance(di, bool) else None)


def calibrate_from_run(run_dir: str | Path, functions: Mapping[str, int], quantile: float = 0.98,
                       need_loads: bool = True) -> LiveCalibration:
    """Kraken's calibration for the served ``functions`` (name → index) from a live Vanilla run (module manual)."""
    run = Path(run_dir)
    if not run.is_dir():
        what = "not a directory" if run.exists() else "no such directory"
        raise CalibrationError(f"{run}: {what} (Kraken calibrates from {HOW})")
    if not 0 < quantile <= 1:
        raise CalibrationError(f"{run}: slo_quantile {quantile:g} must be in (0, 1]")
    name, interval_s = _strategy_of(run / "summary.json")
    if name != "vanilla":
        raise CalibrationError(f"{run / 'summary.json'}: a run of strategy {name!r}, not vanilla "
                               f"(Kraken calibrates from {HOW})")
    inv_path = run / "invocations.csv"
    totals: dict[str, list[float]] = {}
    execs: dict[str, list[float]] = {}
    for line, row in _rows(inv_path, INVOCATION_NEEDS):
        fn, status = row["function"], row["status"]
        if not fn:
            raise CalibrationError(f"{inv_path}:{line}: function: empty")
        if status not in STATUS_HTTP:
            raise CalibrationError(f"{inv_path}:{line}: status: {status!r} is not one of {', '.join(STATUS_HTTP)}")
        if status != "completed":
            continue
        sched, cold, ex = (_seconds(inv_path, line, row, c) for c in ("schedule_s", "cold_start_s", "exec_s"))
        totals.setdefault(fn, []).append(sched + cold + ex)
        execs.setdefault(fn, []).append(ex)
    missing = [n for n in functions if n not in totals]
    if missing:
        raise CalibrationError(f"{inv_path}: no completed invocation of {', '.join(repr(n) for n in missing)} "
                               f"in this run (Kraken needs each served function's SLO and mean exec)")
    slo = {functions[n]: float(np.quantile(np.asarray(totals[n]), quantile)) for n in functions}
    mean = {functions[n]: float(np.mean(np.asarray(execs[n]))) for n in functions}
    done = {functions[n]: len(totals[n]) for n in functions}
    loads: dict[int, list[int]] = {}
    if need_loads:
        b_path = run / "batches.csv"
        logged: dict[str, list[int]] = {}
        for line, row in _rows(b_path, BATCH_NEEDS):
            fn, raw = row["function"], row["invocations"]
            if not fn:
                raise CalibrationError(f"{b_path}:{line}: function: empty")
            try:
                n = int(raw)
            except ValueError:
                raise CalibrationError(f"{b_path}:{line}: invocations: {raw!r} is not a whole number") from None
            if n < 1:
                raise CalibrationError(f"{b_path}:{line}: invocations: {n} (a dispatch holds at least 1)")
            logged.setdefault(fn, []).append(n)
        lost = [n for n in functions if n not in logged]
        if lost:
            raise CalibrationError(f"{b_path}: no dispatch of {', '.join(repr(n) for n in lost)} logged "
                                   f"(the perfect predictor replays them)")
        loads = {functions[n]: logged[n] for n in functions}
    return LiveCalibration(str(run), slo, mean, loads, done, interval_s)
