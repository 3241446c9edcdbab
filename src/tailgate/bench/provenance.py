"""Where a reproduction report goes, and when and on what it ran.

Manual
------
``tailgate batchy report`` and ``tailgate sched report`` write into a fresh results directory
by default, :func:`report_dir` (``results/<name>-YYYYmmdd-HHMMSS``, like ``tailgate run``); the
committed reports under ``docs/`` change only with ``--out docs/``. Each report states in its
header, and on the terminal, the date and machine it ran on (:func:`provenance`) and what it
reused from an earlier run, if anything.

Example::

    p = provenance()
    f"{p['date']} on {describe_machine(p)}"     # '2026-12-07 14:20 UTC on Intel Xeon ..., 2 CPUs (Linux-...)'
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tailgate.run.results import default_out_dir, machine_info


def report_dir(name: str, base: str | Path = "results") -> Path:
    """``results/<name>-YYYYmmdd-HHMMSS`` (with ``-2``, ``-3`` ... if taken); not created."""
    return default_out_dir(name, base)


def provenance() -> dict[str, Any]:
    """Now (UTC) and this machine: ``{date, platform, cpu_model, cpu_count}``."""
    m = machine_info()
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "platform": m["platform"],
            "cpu_model": m["cpu_model"], "cpu_count": m["cpu_count"]}


def describe_machine(p: dict[str, Any]) -> str:
    """One phrase for a :func:`provenance` record's machine ('unknown machine' if it has none)."""
    if not p.get("cpu_model"):
        return "an unknown machine"
    return f"{p['cpu_model']}, {p.get('cpu_count')} CPUs ({p.get('platform', '?')})"


def describe(p: dict[str, Any] | None) -> str:
    """'DATE on MACHINE' for a :func:`provenance` record; 'at an unrecorded date, on an unrecorded
    machine' for None (an earlier run that kept no record)."""
    if not p:
        return "at an unrecorded date, on an unrecorded machine"
    return f"{p.get('date', 'an unrecorded date')} on {describe_machine(p)}"
