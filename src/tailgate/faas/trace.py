"""Function-invocation workloads: an Azure-like trace generator and loaders for the public Azure traces.

Manual
------
A :class:`Trace` is columns (numpy arrays), one row per invocation, sorted by arrival:
``arrival_s`` (seconds from the start of the trace), ``func`` (index into ``names``), ``input_n``
(the fib argument of a CPU function; drawn for I/O functions too, unused there, as the reference
does) and ``duration_s`` (the duration the trace file gave, NaN where it gave none). Per function:
``names`` and ``kinds`` (``"cpu"`` or ``"io"``). ``bad_rows`` and ``problems`` say what a loader
refused (each problem names the file and line).

:func:`generate` makes an Azure-like trace (reference §8): per-minute invocation counts per
function with a heavy head (the two busiest functions carry ``head_share`` of the invocations,
97 % as in the reference window, the rest falling off geometrically), minutes of uneven load, and
bursty arrivals inside a minute (each minute's invocations of a function gather around a few burst
centres). CPU functions get ``input_n`` from the reference's histogram (:data:`FIB_HISTOGRAM`:
66.56 % in 20–26, 3.19 % in 27–28, 3.66 % at 29, 7.3 % in 30–31, 10.45 % in 32–33, 8.85 % in
34–35). Same seed, same trace.

:func:`load_azure_2019` reads ``invocations_per_function_md.anon.dXX.csv`` (HashOwner, HashApp,
HashFunction, Trigger, then the counts of minutes 1..1440) and spreads each minute's count inside
the minute as the generator does. :func:`load_azure_2021` reads
``AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt`` (app, func, end_timestamp, duration; seconds
from 2021-01-31 00:00 UTC); an invocation arrives at ``end_timestamp - duration``.
:func:`load_reference_window` is the reference's window on that file: 2021-02-12 22:10–22:15 UTC and
one app (by default the app with the most invocations in the window; the original's own app
numbering, ``azure_bench_app_00000117``, is not recoverable from the file). A row that does not
parse (wrong number of fields, a count that is not a non-negative integer, a time that is not a
number) is skipped and counted; a missing file, a wrong header, or a file with no good row raises
:class:`TraceError` naming the file.

Arguments of :func:`generate`:

{args}

Example:

>>> from tailgate.faas.trace import generate
>>> t = generate(invocations=800, kind="cpu", seed=5432)
>>> len(t), t.names[:2], t.kinds[0]
(800, ['cpu_f00', 'cpu_f01'], 'cpu')
>>> bool(abs(t.head_share(2) - 0.97) < 0.03)
True
>>> bool(20 <= t.input_n.min() and t.input_n.max() <= 35)
True
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tailgate.core.args import Arg, bind_args, render_args
from tailgate.core.errors import TailgateError

#: The reference's fib input histogram (§8): (low n, high n, share), uniform inside a bucket.
FIB_HISTOGRAM = ((20, 26, 0.6656), (27, 28, 0.0319), (29, 29, 0.0366), (30, 31, 0.073),
                 (32, 33, 0.1045), (34, 35, 0.0885))
#: Seconds from the 2021 trace's start (2021-01-31 00:00 UTC) to the reference window (2021-02-12 22:10).
REFERENCE_WINDOW_S = (12 * 86400 + 22 * 3600 + 10 * 60, 12 * 86400 + 22 * 3600 + 15 * 60)
KINDS = ("cpu", "io")
_MAX_PROBLEMS = 10

GENERATE_ARGS = (
    Arg("invocations", int, 800, unit="invocations", min=1, help="invocations in the trace"),
    Arg("kind", str, "cpu", unit="-", choices=KINDS, help="what the functions do: cpu (fib) or io"),
    Arg("functions", int, 7, unit="functions", min=1, help="functions in the trace (reference: 7 cpu, 5 io)"),
    Arg("minutes", float, 5.0, unit="min", min=1 / 60, help="length of the trace (reference window: 5)"),
    Arg("head_share", float, 0.97, unit="fraction", min=0.0, max=1.0,
        help="share of the invocations carried by the two busiest functions"),
    Arg("minute_sigma", float, 0.8, unit="-", min=0.0,
        help="spread (lognormal sigma) of a function's load from minute to minute"),
    Arg("bursts_per_min", int, 3, unit="bursts", min=1, help="burst centres per function per minute"),
    Arg("burst_spread_s", float, 0.5, unit="s", min=0.0, help="mean distance of an arrival from its burst centre"),
    Arg("seed", int, 5432, unit="-", help="random seed (reference: 5432)"),
)
__doc__ = __doc__.replace("{args}", render_args(GENERATE_ARGS))


class TraceError(TailgateError):
    """A trace file that cannot be used: missing, wrong format, or no usable row."""


@dataclass
class Trace:
    """Invocations as columns, sorted by arrival; see the module manual."""

    arrival_s: np.ndarray
    func: np.ndarray
    input_n: np.ndarray
    names: list[str]
    kinds: list[str]
    duration_s: np.ndarray | None = None
    source: str = "generated"
    bad_rows: int = 0
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        if len(self.func) != n or len(self.input_n) != n or (self.duration_s is not None and len(self.duration_s) != n):
            raise TraceError(f"trace {self.source}: columns of different lengths (arrival_s has {n})")
        if len(self.kinds) != len(self.names) or any(k not in KINDS for k in self.kinds):
            raise TraceError(f"trace {self.source}: one kind (cpu or io) per function name is needed")
        if n and (np.min(self.func) < 0 or np.max(self.func) >= len(self.names)):
            raise TraceError(f"trace {self.source}: a function index is not one of the {len(self.names)} names")
        if n and not np.all(np.isfinite(self.arrival_s)):
            raise TraceError(f"trace {self.source}: an arrival time is not a finite number")
        order = np.argsort(self.arrival_s, kind="stable")
        self.arrival_s = np.ascontiguousarray(self.arrival_s[order], dtype=np.float64)
        self.func = np.ascontiguousarray(self.func[order], dtype=np.int32)
        self.input_n = np.ascontiguousarray(self.input_n[order], dtype=np.int16)
        if self.duration_s is None:
            self.duration_s = np.full(len(self.arrival_s), np.nan)
        else:
            self.duration_s = np.ascontiguousarray(self.duration_s[order], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def n_functions(self) -> int:
        return len(self.names)

    def counts(self) -> np.ndarray:
        """Invocations per function (index as ``names``)."""
        return np.bincount(self.func, minlength=self.n_functions)

    def head_share(self, k: int = 2) -> float:
        """Share of the invocations carried by the ``k`` busiest functions."""
        c = np.sort(self.counts())[::-1]
        return float(c[:k].sum() / max(1, c.sum()))

    def with_kind(self, kind: str) -> "Trace":
        """The same invocations with every function of ``kind`` (``cpu`` or ``io``)."""
        if kind not in KINDS:
            raise TraceError(f"kind {kind!r}: must be one of {', '.join(KINDS)}")
        return Trace(self.arrival_s, self.func, self.input_n, list(self.names), [kind] * self.n_functions,
                     self.duration_s, self.source, self.bad_rows, list(self.problems))


def draw_fib_n(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` fib arguments drawn from :data:`FIB_HISTOGRAM` (uniform inside a bucket)."""
    shares = np.array([b[2] for b in FIB_HISTOGRAM])
    bucket = rng.choice(len(FIB_HISTOGRAM), size=n, p=shares / shares.sum())
    lo = np.array([b[0] for b in FIB_HISTOGRAM])[bucket]
    hi = np.array([b[1] for b in FIB_HISTOGRAM])[bucket]
    return (lo + np.floor(rng.random(n) * (hi - lo + 1))).astype(np.int16)


def _function_shares(n_functions: int, head_share: float) -> np.ndarray:
    """Two head functions carry ``head_share`` (about 63:37, as 409 and 410), the rest fall off by 1/2."""
    if n_functions == 1:
        return np.ones(1)
    if n_functions == 2:
        return np.array([0.63, 0.37])
    tail = 0.5 ** np.arange(n_functions - 2)
    shares = np.concatenate([np.array([0.63, 0.37]) * head_share, tail / tail.sum() * (1.0 - head_share)])
    return shares / shares.sum()


def _spread_in_minutes(rng: np.random.Generator, counts: np.ndarray, bursts: int, spread_s: float,
                       last_minute_s: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Arrivals for a (function, minute) count matrix: (arrival_s, func), bursty inside each minute
    (the last minute ``last_minute_s`` long)."""
    n_f, n_m = counts.shape
    cell = np.repeat(np.arange(n_f * n_m), counts.ravel())
    centres = rng.random((n_f * n_m, bursts)) * 60.0
    pick = rng.integers(0, bursts, size=len(cell))
    offset = rng.exponential(spread_s, size=len(cell)) if spread_s > 0 else np.zeros(len(cell))
    within = np.mod(centres[cell, pick] + offset, 60.0)
    minute = cell % n_m
    within = np.where(minute == n_m - 1, within * (last_minute_s / 60.0), within)
    return minute * 60.0 + within, (cell // n_m).astype(np.int32)


def generate(**kwargs) -> Trace:
    """An Azure-like trace; arguments as the module manual's table (unknown or bad ones refused)."""
    a = bind_args("faas trace generate", GENERATE_ARGS, kwargs)
    rng = np.random.default_rng(a["seed"])
    n_m = max(1, int(math.ceil(a["minutes"])))
    shares = _function_shares(a["functions"], a["head_share"])
    w = rng.lognormal(0.0, a["minute_sigma"], size=(a["functions"], n_m)) if a["minute_sigma"] > 0 \
        else np.ones((a["functions"], n_m))
    if a["minutes"] < n_m:  # a partial last minute carries its part only
        w[:, -1] *= a["minutes"] - (n_m - 1)
    p = (shares[:, None] * w / w.sum(axis=1, keepdims=True)).ravel()
    counts = rng.multinomial(a["invocations"], p / p.sum()).reshape(a["functions"], n_m)
    last_s = (a["minutes"] - (n_m - 1)) * 60.0
    arrival, func = _spread_in_minutes(rng, counts, a["bursts_per_min"], a["burst_spread_s"], last_s)
    names = [f"{a['kind']}_f{k:02d}" for k in range(a["functions"])]
    return Trace(arrival, func, draw_fib_n(rng, len(func)), names, [a["kind"]] * a["functions"],
                 source=f"generated(seed={a['seed']})")


def _open(path: str | Path, what: str):
    p = Path(path)
    if not p.exists():
        raise TraceError(f"{p}: no such {what} file")
    if not p.is_file():
        raise TraceError(f"{p}: not a file (expected an {what} file)")
    try:
        return p.open(newline="", encoding="utf-8", errors="strict")
    except OSError as e:
        raise TraceError(f"{p}: cannot read ({e.strerror})") from None


class _Problems:
    def __init__(self, path: Path) -> None:
        self.path, self.count, self.lines = path, 0, []

    def add(self, line: int, why: str) -> None:
        self.count += 1
        if len(self.lines) < _MAX_PROBLEMS:
            self.lines.append(f"{self.path}:{line}: {why}")


def load_azure_2019(path: str | Path, kind: str = "cpu", first_minute: int = 1, minutes: int = 1440,
                    apps: list[str] | None = None, spread_s: float = 0.5, seed: int = 5432) -> Trace:
    """The Azure Functions 2019 per-minute counts (``invocations_per_function_md.anon.dXX.csv``).

    ``first_minute`` (1-based) and ``minutes`` choose the span; ``apps`` keeps only those HashApp
    values. Each minute's count is spread inside the minute in 3 bursts (``spread_s`` mean
    distance). A bad row is skipped and counted in ``bad_rows``/``problems``."""
    if kind not in KINDS:
        raise TraceError(f"kind {kind!r}: must be one of {', '.join(KINDS)}")
    if not 1 <= first_minute <= 1440 or minutes < 1:
        raise TraceError(f"minutes {first_minute}..+{minutes}: the 2019 trace has minutes 1..1440")
    path = Path(path)
    last = min(1440, first_minute + minutes - 1)
    keep_apps = set(apps) if apps else None
    probs = _Problems(path)
    names: list[str] = []
    rows: list[np.ndarray] = []
    with _open(path, "Azure 2019 trace") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise TraceError(f"{path}: empty file (expected the Azure 2019 header HashOwner,HashApp,...)") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise TraceError(f"{path}:1: not a CSV header ({e})") from None
        want = ["HashOwner", "HashApp", "HashFunction", "Trigger"]
        if [h.strip() for h in header[:4]] != want or len(header) < 5:
            raise TraceError(f"{path}:1: not an Azure 2019 invocation file (header starts "
                             f"{','.join(header[:4])!r}, expected {','.join(want)},1,...,1440)")
        n_cols = len(header)
        try:
            for line, row in enumerate(reader, start=2):
                if len(row) != n_cols:
                    probs.add(line, f"{len(row)} fields, expected {n_cols}")
                    continue
                if keep_apps is not None and row[1] not in keep_apps:
                    continue
                try:
                    vals = np.array([int(v) for v in row[4:]], dtype=np.int64)
                except ValueError:
                    probs.add(line, "a minute count is not an integer")
                    continue
                if (vals < 0).any():
                    probs.add(line, "a negative minute count")
                    continue
                sel = vals[first_minute - 1:last]
                if sel.sum() == 0:
                    continue
                names.append(row[2])
                rows.append(sel)
        except (csv.Error, UnicodeDecodeError) as e:
            raise TraceError(f"{path}:{reader.line_num}: unreadable ({e})") from None
    if not rows:
        why = f"; {probs.count} bad rows, first: {probs.lines[0]}" if probs.count else ""
        raise TraceError(f"{path}: no invocation in minutes {first_minute}..{last}{why}")
    counts = np.vstack(rows)
    rng = np.random.default_rng(seed)
    arrival, func = _spread_in_minutes(rng, counts, 3, spread_s)
    return Trace(arrival, func, draw_fib_n(rng, len(func)), names, [kind] * len(names),
                 source=f"{path} (Azure 2019, minutes {first_minute}..{last})", bad_rows=probs.count,
                 problems=probs.lines)


def load_azure_2021(path: str | Path, kind: str = "cpu", window_s: tuple[float, float] | None = None,
                    app: str | None = None, seed: int = 5432) -> Trace:
    """The Azure Functions 2021 invocation trace (app, func, end_timestamp, duration).

    An invocation arrives at ``end_timestamp - duration``; ``window_s`` (seconds from the trace
    start) keeps the invocations arriving in ``[start, end)`` and makes times relative to
    ``start``; ``app`` keeps one app. A bad row is skipped and counted."""
    if kind not in KINDS:
        raise TraceError(f"kind {kind!r}: must be one of {', '.join(KINDS)}")
    path = Path(path)
    probs = _Problems(path)
    apps: list[str] = []
    funcs: list[str] = []
    arrivals: list[float] = []
    durations: list[float] = []
    with _open(path, "Azure 2021 trace") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise TraceError(f"{path}: empty file (expected the header app,func,end_timestamp,duration)") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise TraceError(f"{path}:1: not a CSV header ({e})") from None
        want = ("app", "func", "end_timestamp", "duration")
        if any(w not in header for w in want):
            raise TraceError(f"{path}:1: not an Azure 2021 invocation file (header {','.join(header)!r}, "
                             f"expected {','.join(want)})")
        ia, iff, ie, idur = (header.index(w) for w in want)
        n_cols = len(header)
        try:
            for line, row in enumerate(reader, start=2):
                if len(row) != n_cols:
                    probs.add(line, f"{len(row)} fields, expected {n_cols}")
                    continue
                try:
                    end, dur = float(row[ie]), float(row[idur])
                except ValueError:
                    probs.add(line, "end_timestamp or duration is not a number")
                    continue
                if not (math.isfinite(end) and math.isfinite(dur)) or dur < 0:
                    probs.add(line, "end_timestamp or duration is not a finite time >= 0")
                    continue
                start = end - dur
                if window_s is not None and not window_s[0] <= start < window_s[1]:
                    continue
                apps.append(row[ia])
                funcs.append(row[iff])
                arrivals.append(start)
                durations.append(dur)
        except (csv.Error, UnicodeDecodeError) as e:
            raise TraceError(f"{path}:{reader.line_num}: unreadable ({e})") from None
    if app is not None:
        keep = [k for k, a in enumerate(apps) if a == app]
        if not keep:
            raise TraceError(f"{path}: app {app!r} has no invocation{' in the window' if window_s else ''}")
        funcs = [funcs[k] for k in keep]
        arrivals = [arrivals[k] for k in keep]
        durations = [durations[k] for k in keep]
    if not funcs:
        why = f"; {probs.count} bad rows, first: {probs.lines[0]}" if probs.count else ""
        raise TraceError(f"{path}: no invocation{' in the window' if window_s else ''}{why}")
    names, func = np.unique(np.array(funcs), return_inverse=True)
    arr = np.array(arrivals, dtype=np.float64)
    arr -= window_s[0] if window_s is not None else arr.min()
    rng = np.random.default_rng(seed)
    return Trace(arr, func.astype(np.int32), draw_fib_n(rng, len(arr)), [str(n) for n in names],
                 [kind] * len(names), np.array(durations), source=f"{path} (Azure 2021)",
                 bad_rows=probs.count, problems=probs.lines)


def busiest_app(path: str | Path, window_s: tuple[float, float] = REFERENCE_WINDOW_S) -> str:
    """The app with the most invocations arriving in ``window_s`` of a 2021 trace file."""
    with _open(path, "Azure 2021 trace") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "app" not in reader.fieldnames:
            raise TraceError(f"{path}:1: not an Azure 2021 invocation file (no app column)")
        seen: dict[str, int] = {}
        for row in reader:
            try:
                start = float(row["end_timestamp"]) - float(row["duration"])
            except (TypeError, ValueError):
                continue
            if window_s[0] <= start < window_s[1]:
                seen[row["app"]] = seen.get(row["app"], 0) + 1
    if not seen:
        raise TraceError(f"{path}: no invocation in the window {window_s[0]:g}..{window_s[1]:g} s from the trace start")
    return max(seen, key=lambda k: (seen[k], k))


def load_reference_window(path: str | Path, kind: str = "cpu", app: str | None = None, seed: int = 5432) -> Trace:
    """The reference's replay window (2021-02-12 22:10–22:15 UTC) of a 2021 trace file, one app
    (``app``, or the busiest in the window)."""
    chosen = app if app is not None else busiest_app(path)
    t = load_azure_2021(path, kind=kind, window_s=REFERENCE_WINDOW_S, app=chosen, seed=seed)
    t.source = f"{path} (reference window 2021-02-12 22:10-22:15 UTC, app {chosen})"
    return t


def load_trace(path: str | Path, kind: str = "cpu", seed: int = 5432) -> Trace:
    """A trace file of either format, told apart by its header (2019: HashOwner...; 2021: app,func,...)."""
    with _open(path, "trace") as fh:
        try:
            first = fh.readline()
        except UnicodeDecodeError:
            raise TraceError(f"{path}:1: not a text file (expected an Azure 2019 or 2021 CSV)") from None
    if first.startswith("HashOwner"):
        return load_azure_2019(path, kind=kind, seed=seed)
    if "end_timestamp" in first:
        return load_azure_2021(path, kind=kind, seed=seed)
    raise TraceError(f"{path}:1: neither an Azure 2019 (HashOwner,...) nor a 2021 (app,func,end_timestamp,"
                     "duration) trace file")
