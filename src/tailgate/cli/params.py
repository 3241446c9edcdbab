"""``--param`` of the commands that run several named things at once (policies, strategies).

``parse_params(["darc.delta=2", "slice_ns=5000"], ["darc", "ts"], args_of, "policy")`` →
``{"darc": {"delta": 2}, "ts": {"slice_ns": 5000}}``: ``NAME.KEY=VALUE`` sets KEY of NAME, a bare
``KEY=VALUE`` sets KEY of every chosen one that takes it (``args_of(name)`` lists what each takes).
A value is an int, else a float, else ``none`` (None), else the text; the receiving arguments
check it. A malformed item, a NAME not chosen, or a KEY that nothing chosen takes is an ArgError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tailgate.core.args import Arg
from tailgate.core.errors import ArgError


def parse_value(raw: str):
    """``"5"`` → 5, ``"0.5"`` → 0.5, ``"none"`` → None, anything else stays text."""
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return None if raw.lower() == "none" else raw


def parse_params(items: list[str] | None, names: list[str], args_of: Callable[[str], Iterable[Arg]],
                 what: str) -> dict[str, dict]:
    """Per chosen name, the ``--param`` values given for it (module manual)."""
    out: dict[str, dict] = {n: {} for n in names}
    upper = what.upper()
    for item in items or []:
        key, sep, raw = item.partition("=")
        owner, dot, name = key.rpartition(".")
        if not sep or not name:
            raise ArgError(f"--param {item!r}: expected {upper}.KEY=VALUE or KEY=VALUE")
        if dot and owner not in out:
            raise ArgError(f"--param {item!r}: {what} {owner!r} is not among --{what} {','.join(names)}")
        targets = [owner] if dot else [n for n in names if name in {a.name for a in args_of(n)}]
        if not targets:
            raise ArgError(f"--param {item!r}: no chosen {what} takes {name!r}")
        for t in targets:
            out[t][name] = parse_value(raw)
    return out
