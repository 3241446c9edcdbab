"""The function manifest: which functions a gateway serves, their handlers, limits and strategy.

Manual
------
A manifest is a YAML file::

    path: .                      # optional: folder (relative to this file) put on the handlers' sys.path
    strategy:                    # optional: the default of `faas serve --strategy` and its arguments
      name: faasbatch
      dispatch_interval_s: 0.2
    pool:                        # optional: the warm pool's bounds (tailgate.faas.strategies.POOL_ARGS)
      max_per_function: 50
      max_total: 200
      idle_lifetime_s: 600
    functions:
      - name: fib                # [A-Za-z0-9_.-]+, unique
        handler: handlers:fib    # module:function, called Lambda-style as function(event, context)
        kind: cpu                # cpu: each invocation in a forked child; io: in a thread
        limits:                  # all optional
          memory_mb: 256         # the sandbox's memory limit (cgroup), MB
          cpu_share: 1.0         # the sandbox's CPU quota in cores (cgroup)
          timeout_s: 30          # per-invocation timeout, s

:func:`load_manifest` reads and checks it; anything wrong is a :class:`ManifestError` whose one
line names the file and the key (``manifest.yaml: functions[2].kind: must be cpu or io, got
'gpu'``). Handlers are not imported here: the sandbox imports them, and a handler that cannot be
imported is reported when the gateway starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tailgate.core.errors import TailgateError
from tailgate.faas.strategies import POOL_ARGS, STRATEGIES

KINDS = ("cpu", "io")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
HANDLER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
LIMITS = {"memory_mb": (int, 1, 1 << 20), "cpu_share": (float, 0.01, 1024.0), "timeout_s": (float, 0.001, 86400.0)}
DEFAULT_LIMITS = {"memory_mb": 512, "cpu_share": 1.0, "timeout_s": 30.0}


class ManifestError(TailgateError):
    """A manifest that cannot be served: names the file and the key."""


@dataclass(frozen=True)
class FunctionSpec:
    """One function of a manifest."""

    name: str
    handler: str          # module:function
    kind: str             # cpu | io
    memory_mb: int
    cpu_share: float
    timeout_s: float
    index: int            # position in the manifest: the function's number in the strategies and columns

    @property
    def module(self) -> str:
        return self.handler.partition(":")[0]

    @property
    def attr(self) -> str:
        return self.handler.partition(":")[2]

    def to_json(self) -> dict:
        return {"name": self.name, "handler": self.handler, "kind": self.kind, "memory_mb": self.memory_mb,
                "cpu_share": self.cpu_share, "timeout_s": self.timeout_s}


@dataclass
class Manifest:
    """A checked manifest."""

    source: str
    functions: dict[str, FunctionSpec]
    path: list[str] = field(default_factory=list)        # folders for the handlers' sys.path
    strategy: dict[str, Any] = field(default_factory=dict)
    pool: dict[str, Any] = field(default_factory=dict)


def _number(where: str, value: Any, typ: type, lo: float, hi: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ManifestError(f"{where}: must be a number, got {value!r}")
    if typ is int and float(value) != int(value):
        raise ManifestError(f"{where}: must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise ManifestError(f"{where}: must be in [{lo:g}, {hi:g}], got {value!r}")
    return typ(value)


def load_manifest(path: str | Path) -> Manifest:
    """Read and check a manifest; see the module manual."""
    p = Path(path)
    src = str(p)
    try:
        text = p.read_text()
    except OSError as e:
        raise ManifestError(f"{src}: cannot read ({e.strerror or e})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ManifestError(f"{src}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{src}: must be a mapping with a 'functions' list, got {type(doc).__name__}")
    unknown = set(doc) - {"path", "strategy", "pool", "functions"}
    if unknown:
        raise ManifestError(f"{src}: {sorted(unknown)[0]}: unknown key (keys: path, strategy, pool, functions)")
    paths = doc.get("path", [])
    paths = [paths] if isinstance(paths, str) else paths
    if not isinstance(paths, list) or not all(isinstance(x, str) for x in paths):
        raise ManifestError(f"{src}: path: must be a folder or a list of folders")
    folders = [str((p.parent / x).resolve()) for x in paths]
    strategy = doc.get("strategy") or {}
    if not isinstance(strategy, dict):
        raise ManifestError(f"{src}: strategy: must be a mapping (name: ..., and its arguments)")
    if "name" in strategy and strategy["name"] not in STRATEGIES:
        raise ManifestError(f"{src}: strategy.name: unknown {strategy['name']!r} (strategies: {', '.join(STRATEGIES)})")
    pool = doc.get("pool") or {}
    if not isinstance(pool, dict):
        raise ManifestError(f"{src}: pool: must be a mapping")
    pool_names = {a.name for a in POOL_ARGS}
    for k in pool:
        if k not in pool_names:
            raise ManifestError(f"{src}: pool.{k}: unknown key (keys: {', '.join(sorted(pool_names))})")
    funcs = doc.get("functions")
    if not isinstance(funcs, list) or not funcs:
        raise ManifestError(f"{src}: functions: must be a non-empty list")
    out: dict[str, FunctionSpec] = {}
    for i, f in enumerate(funcs):
        at = f"{src}: functions[{i}]"
        if not isinstance(f, dict):
            raise ManifestError(f"{at}: must be a mapping (name, handler, kind, limits)")
        extra = set(f) - {"name", "handler", "kind", "limits"}
        if extra:
            raise ManifestError(f"{at}.{sorted(extra)[0]}: unknown key (keys: name, handler, kind, limits)")
        for key in ("name", "handler", "kind"):
            if key not in f:
                raise ManifestError(f"{at}.{key}: missing")
        name = f["name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ManifestError(f"{at}.name: must match [A-Za-z0-9_.-]+, got {name!r}")
        if name in out:
            raise ManifestError(f"{at}.name: {name!r} is named twice")
        handler = f["handler"]
        if not isinstance(handler, str) or not HANDLER_RE.match(handler):
            raise ManifestError(f"{at}.handler: must be module:function, got {handler!r}")
        if f["kind"] not in KINDS:
            raise ManifestError(f"{at}.kind: must be cpu or io, got {f['kind']!r}")
        limits = f.get("limits") or {}
        if not isinstance(limits, dict):
            raise ManifestError(f"{at}.limits: must be a mapping ({', '.join(LIMITS)})")
        lim = dict(DEFAULT_LIMITS)
        for k, v in limits.items():
            if k not in LIMITS:
                raise ManifestError(f"{at}.limits.{k}: unknown key (keys: {', '.join(LIMITS)})")
            typ, lo, hi = LIMITS[k]
            lim[k] = _number(f"{at}.limits.{k}", v, typ, lo, hi)
        out[name] = FunctionSpec(name=name, handler=handler, kind=f["kind"], index=i, **lim)
    return Manifest(source=src, functions=out, path=folders, strategy=dict(strategy), pool=dict(pool))
