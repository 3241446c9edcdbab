"""Declared arguments: each module class lists its arguments once, with type, unit and default.

Manual
------
::

    class Bypass(Module):
        args = (
            Arg("t0_ns", float, 0.0, unit="ns", help="busy-wait per batch", min=0),
            Arg("t1_ns", float, 0.0, unit="ns", help="busy-wait per packet", min=0),
        )

``Bypass(t0_ns=500)`` validates at construction: an unknown name, a value of the wrong type, a value
out of range or not among ``choices``, or a missing required argument raises :class:`ArgError` with
one line naming the module and the argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tailgate.core.errors import ArgError

REQUIRED = object()


@dataclass(frozen=True)
class Arg:
    name: str
    type: Callable[[Any], Any] | type = float
    default: Any = REQUIRED
    unit: str = ""
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def convert(self, owner: str, value: Any) -> Any:
        """Convert and check one value; raise ArgError naming ``owner`` and the argument."""
        if value is None and not self.required and self.default is None:
            return None
        try:
            if self.type is bool and isinstance(value, str):
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                v = low in ("1", "true", "yes", "on")
            elif self.type is int and isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(value)
                v = int(value)
            elif self.type is int and isinstance(value, str):
                v = int(value.replace("_", ""), 0)
            elif self.type is float and isinstance(value, str):
                v = float(value.replace("_", ""))
            else:
                v = self.type(value)
        except (TypeError, ValueError):
            tname = getattr(self.type, "__name__", str(self.type))
            raise ArgError(f"{owner}: argument {self.name!r} must be {tname}, got {value!r}") from None
        if self.min is not None and v < self.min:
            raise ArgError(f"{owner}: argument {self.name!r} must be >= {self.min}{self.unit and ' ' + self.unit}, got {v!r}")
        if self.max is not None and v > self.max:
            raise ArgError(f"{owner}: argument {self.name!r} must be <= {self.max}{self.unit and ' ' + self.unit}, got {v!r}")
        if self.choices is not None and v not in self.choices:
            raise ArgError(f"{owner}: argument {self.name!r} must be one of {', '.join(map(str, self.choices))}; got {v!r}")
        return v


def bind_args(owner: str, declared: tuple[Arg, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Validate ``given`` against ``declared``; returns every declared name with its value."""
    known = {a.name: a for a in declared}
    for name in given:
        if name not in known:
            names = ", ".join(known) or "none"
            raise ArgError(f"{owner}: unknown argument {name!r} (arguments: {names})")
    out = {}
    for a in declared:
        if a.name in given:
            out[a.name] = a.convert(owner, given[a.name])
        elif a.required:
            raise ArgError(f"{owner}: missing required argument {a.name!r}{' (' + a.help + ')' if a.help else ''}")
        else:
            out[a.name] = a.default
    return out


def float_list(value: Any) -> list[float]:
    """An argument type: a list of floats from a list/tuple or a comma/colon-separated string."""
    if isinstance(value, str):
        parts = [p for p in value.replace(":", ",").split(",") if p.strip()]
        return [float(p) for p in parts]
    return [float(v) for v in value]


def any_value(value: Any) -> Any:
    """An argument type that takes any Python object (templates, rule lists) as given."""
    return value
