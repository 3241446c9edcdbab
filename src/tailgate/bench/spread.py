"""How the reports write a number measured over repeated runs: its median and range.

Manual
------
:func:`spread` turns the values of one number over several runs (wall-clock runs are not
deterministic) into ``median (min–max)``, the form every wall-clock figure of the reproduction
reports takes; a number every run gave alike is written once. Runs that gave no value (None or
NaN) are left out and counted.

Example::

    spread([4.2, 4.95, 3.9])                      # '4.20 (3.90–4.95)'
    spread([0, 1, None], lambda v: f"{v:g}")      # '0.5 (0–1), None in 1'
"""

from __future__ import annotations

import statistics
from typing import Callable, Iterable


def spread(values: Iterable, fmt: Callable[[float], str] = lambda v: f"{v:.2f}") -> str:
    """``median (min–max)`` of the values, each written by ``fmt`` (None and NaN left out; "None
    in k" says how many); one value, or all equal as written: just that value; none: "–"."""
    values = list(values)
    vals = [v for v in values if v is not None and v == v]
    missing = len(values) - len(vals)
    if not vals:
        return "–" if not missing else "None"
    lo, hi, med = min(vals), max(vals), statistics.median(vals)
    text = fmt(med) if fmt(lo) == fmt(hi) else f"{fmt(med)} ({fmt(lo)}–{fmt(hi)})"
    return text + (f", None in {missing}" if missing else "")
