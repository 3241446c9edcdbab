"""The module profile file: each network function's measured batch cost on this machine.

Manual
------
JSON, one object keyed by class name (the original profiler's ``profiler_results.json`` shape,
which it also reads)::

    {"ACL": {"T_0": 4990.9, "T_1": 493.1, "r2": 0.9998, "stat": "median",
             "points": [[1, 5494.5], [2, 5907.5], ...],   # [b, ns], the overhead taken off
             "batches": [1000, 1000, ...],                # timed calls behind each point
             "overhead_ns": 269.0, "max_batch": 32, "headers": "fresh",
             "fixture": "700 ClassBench-like rules, ...", "when": "2025-...", "host": "..."},
     ...}

Only ``T_0`` and ``T_1`` (ns, ≥ 0) are required of an entry (:mod:`tailgate.batchy.profiler.harness`
writes the rest). The file lives at ``$TAILGATE_PROFILE`` if that is set, else
``~/.cache/tailgate/profile.json`` (:func:`profile_path`).

- :func:`load_profile` reads it: ``{}`` when there is none; a file that is not JSON, or not an
  object of entries each holding non-negative numbers ``T_0`` and ``T_1``, is an ArgError naming
  the file.
- :func:`save_profile` merges new entries into it: the classes given are replaced, the others
  kept (read again just before writing, so entries written meanwhile survive). The file is written
  whole, atomically (a temporary file, then a rename).
- :func:`module_cost` is one class's ``(T_0, T_1)`` from a loaded profile, or None.

Example::

    from tailgate.batchy.profiler.store import load_profile, module_cost
    module_cost("IPv4Lookup", load_profile())   # -> (T_0, T_1) or None
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from tailgate.core.errors import ArgError

ENV_VAR = "TAILGATE_PROFILE"


def profile_path() -> Path:
    """``$TAILGATE_PROFILE`` if set (and not empty), else ``~/.cache/tailgate/profile.json``."""
    p = os.environ.get(ENV_VAR)
    if p:
        return Path(p).expanduser()
    return Path.home() / ".cache" / "tailgate" / "profile.json"


def load_profile(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """The profile at ``path`` (default :func:`profile_path`) as ``{class name: entry}``.

    ``{}`` when the file does not exist. A file that is not JSON, or not an object of entries
    each holding non-negative numbers ``T_0`` and ``T_1``, is an ArgError naming the file.
    """
    p = Path(path) if path is not None else profile_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ArgError(f"{p}: cannot read the module profile: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ArgError(f"{p}: the module profile is not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise ArgError(f"{p}: the module profile must be a JSON object {{class name: {{T_0, T_1, ...}}}}, "
                       f"got {type(data).__name__}")
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise ArgError(f"{p}: entry {name!r} must be an object with T_0 and T_1, got {type(entry).__name__}")
        for k in ("T_0", "T_1"):
            v = entry.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ArgError(f"{p}: entry {name!r}: {k} must be a non-negative number of ns, got {v!r}")
    return data


def module_cost(class_name: str, profile: dict) -> tuple[float, float] | None:
    """``(T_0, T_1)`` in ns for ``class_name`` from a loaded profile, or None if it has none."""
    entry = profile.get(class_name) if isinstance(profile, dict) else None
    if not isinstance(entry, dict):
        return None
    try:
        t0, t1 = float(entry["T_0"]), float(entry["T_1"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(t0) and math.isfinite(t1)) or t0 < 0 or t1 < 0:
        return None
    return t0, t1


def save_profile(entries: dict[str, dict], path: str | os.PathLike | None = None) -> Path:
    """Merge ``entries`` into the profile at ``path`` (default :func:`profile_path`) and write it;
    returns the file. An existing file that cannot be read is an ArgError (it is left as it is)."""
    p = Path(path).expanduser() if path is not None else profile_path()
    merged = {**load_profile(p), **entries}  # read again: keep entries written meanwhile
    _write_atomic(p, merged)
    return p


def _write_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
