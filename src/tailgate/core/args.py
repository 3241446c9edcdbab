"""Declared arguments: each module class lists its arguments once, with type, default, unit and help.

Manual
------
A module (or controller, or policy) declares its arguments as a tuple of :class:`Arg`::

    class Bypass(Module):
        args = (
            Arg("t0_ns", float, 0.0, unit="ns", help="busy-wait per batch", min=0),
            Arg("t1_ns", float, 0.0, unit="ns", help="busy-wait per packet", min=0),
        )

``Bypass(t0_ns=500)`` validates at construction: an unknown name, a value of the wrong type, a value
out of range or not among ``choices``, or a missing required argument raises :class:`ArgError` with
one line naming the module and the argument.

Every declared argument carries a ``unit`` (``"ns"``, ``"pps"``, ``"packets"``, ...; ``"-"`` for
what has none: counts of things that are not packets, names, flags, choices, addresses) and a
one-line ``help``; :func:`undocumented` lists the ones that do not, and the test suite fails on
any of a registered class. The declarations are the manual's argument table:
:func:`render_args` renders it as text for the terminal (``tailgate modules NAME``) or as
markdown, one row per argument with its name, type, default, unit, range or choices, and help.

Example:

>>> from tailgate.core.args import Arg, render_args
>>> decl = (Arg("rate_pps", float, 0.0, unit="pps", help="offered rate; 0 = unlimited", min=0),
...         Arg("proto", str, "udp", unit="-", help="protocol of random flows", choices=("udp", "tcp")))
>>> print(render_args(decl))
Arguments:
  name      type   default  unit  range            help
  rate_pps  float  0        pps   >= 0             offered rate; 0 = unlimited
  proto     str    'udp'    -     one of udp, tcp  protocol of random flows
>>> print(render_args(decl, fmt="markdown").splitlines()[4])
| `rate_pps` | float | `0` | pps | >= 0 | offered rate; 0 = unlimited |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tailgate.core.errors import ArgError



class _Required:
    """The default of an argument that must be given (shown as ``required`` in manuals)."""

    def __repr__(self) -> str:
        return "required"


REQUIRED = _Required()


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

    @property
    def _unit_suffix(self) -> str:
        """`` ns`` for a unit, nothing for a unitless ("-") argument, in error messages."""
        return f" {self.unit}" if self.unit and self.unit != "-" else ""

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
            raise ArgError(f"{owner}: argument {self.name!r} must be >= {self.min}{self._unit_suffix}, got {v!r}")
        if self.max is not None and v > self.max:
            raise ArgError(f"{owner}: argument {self.name!r} must be <= {self.max}{self._unit_suffix}, got {v!r}")
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


float_list.type_name = "list of float"
any_value.type_name = "any"

_COLUMNS = ("name", "type", "default", "unit", "range", "help")


def undocumented(declared: tuple[Arg, ...]) -> list[str]:
    """Names of the arguments in ``declared`` whose ``unit`` or ``help`` is empty."""
    return [a.name for a in declared if not a.unit.strip() or not a.help.strip()]


def _type_name(a: Arg) -> str:
    return getattr(a.type, "type_name", None) or getattr(a.type, "__name__", str(a.type))


def _num(x: float) -> str:
    """A bound or default as people write it: 1048576 rather than 1.04858e+06, 0.9, 1e-06; an
    int always in full (``2**64 - 1`` is 18446744073709551615), a whole float below 1e15 too."""
    if isinstance(x, int):
        return str(int(x))
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:g}"


def _default_text(a: Arg) -> str:
    v = a.default
    if isinstance(v, float):
        return _num(v)
    return repr(v)


def _range_text(a: Arg) -> str:
    if a.choices is not None:
        return "one of " + ", ".join(map(str, a.choices))
    if a.min is not None and a.max is not None:
        return f"{_num(a.min)}..{_num(a.max)}"
    if a.min is not None:
        return f">= {_num(a.min)}"
    if a.max is not None:
        return f"<= {_num(a.max)}"
    return ""


def arg_rows(declared: tuple[Arg, ...]) -> list[tuple[str, str, str, str, str, str]]:
    """One ``(name, type, default, unit, range, help)`` row of text per declared argument."""
    return [(a.name, _type_name(a), _default_text(a), a.unit, _range_text(a), a.help) for a in declared]


def render_args(declared: tuple[Arg, ...], fmt: str = "text") -> str:
    """The manual's "Arguments" table of ``declared``: ``fmt="text"`` for the terminal (columns
    padded to line up), ``fmt="markdown"`` for docs (a pipe table; names and defaults as code)."""
    rows = arg_rows(declared)
    if fmt == "markdown":
        if not rows:
            return "Arguments: none."
        cell = lambda s: s.replace("|", "\\|")  # noqa: E731
        lines = ["**Arguments**", "", "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        for name, tname, default, unit, rng, help_ in rows:
            lines.append(
                f"| `{cell(name)}` | {cell(tname)} | `{cell(default)}` | {cell(unit)} | {cell(rng)} | {cell(help_)} |"
            )
        return "\n".join(lines)
    if fmt != "text":
        raise ValueError(f"render_args: fmt must be 'text' or 'markdown', got {fmt!r}")
    if not rows:
        return "Arguments: none."
    table = [_COLUMNS, *rows]
    widths = [max(len(r[k]) for r in table) for k in range(len(_COLUMNS) - 1)]
    lines = ["Arguments:"]
    for r in table:
        lines.append(("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]).rstrip())
    return "\n".join(lines)
