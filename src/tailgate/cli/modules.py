"""``tailgate modules [NAME]``: list the network functions, or print one's manual."""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tailgate import nf
from tailgate.cli.errors import fail
from tailgate.core.args import render_args


#: ``:role:`target``` (Sphinx cross-references and roles), ``title <target>`` included.
_ROLE = re.compile(r":([a-z]+(?::[a-z]+)?):`([^`]+)`")
#: ````code```` (reST inline literals), possibly across a line break.
_LITERAL = re.compile(r"``(.+?)``", re.S)


def _role_text(m: re.Match) -> str:
    """What a reader needs of a role: its title, or the target's last part for ``~a.b.C``."""
    role, body = m.group(1), m.group(2).strip()
    titled = re.fullmatch(r"(.+?)\s*<[^<>]+>", body, re.S)
    if titled:
        return titled.group(1)
    if role in ("rfc", "pep"):
        return f"{role.upper()} {body}"
    if body.startswith("~"):
        body = body[1:].rsplit(".", 1)[-1]
    if role in ("func", "meth", "py:func", "py:meth") and not body.endswith(")"):
        body += "()"
    return body


def _inline(text: str, code_mark: str) -> str:
    """Prose with roles resolved and inline literals quoted by ``code_mark`` (e.g. a backquote)."""
    text = _ROLE.sub(_role_text, text)
    return _LITERAL.sub(lambda m: code_mark + m.group(1) + code_mark, text)


def plain_doc(doc: str, code_mark: str = "`") -> str:
    r"""A reST docstring as terminal text: ``:class:`~a.b.C``` reads ``C``, a ````literal```` reads
    `literal`, ``Example::`` reads ``Example:``; doctest blocks (``>>>`` to the next blank line)
    and literal blocks (the indented lines after ``::``) are kept exactly as written.

    >>> text = plain_doc("Sends to ``gates`` outputs; see :class:`~tailgate.nf.split.RandomSplit`.\n"
    ...                  "Example::\n\n    src >> lb\n\n>>> f(``x``)\n2")
    >>> text.split("\n")
    ['Sends to `gates` outputs; see RandomSplit.', 'Example:', '', '    src >> lb', '', '>>> f(``x``)', '2']
    """
    out: list[str] = []
    prose: list[str] = []
    literal_indent: int | None = None   # inside a literal block: the indent of the line that opened it
    in_doctest = False

    def flush() -> None:
        if prose:
            out.extend(_inline("\n".join(prose), code_mark).split("\n"))
            prose.clear()

    for line in doc.split("\n"):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if in_doctest:
            if stripped:
                out.append(line)
                continue
            in_doctest = False
        if literal_indent is not None:
            if not stripped or indent > literal_indent:
                out.append(line)
                continue
            literal_indent = None
        if stripped.startswith(">>>"):
            flush()
            in_doctest = True
            out.append(line)
            continue
        if stripped.endswith("::"):
            literal_indent = indent
            if stripped == "::":     # a paragraph of its own: it only marks the block
                flush()
                continue
            head = line.rstrip()[:-2]
            # "Example::" reads "Example:"; "the table ::" reads "the table".
            line = head.rstrip() if head.endswith(" ") else head + ":"
            prose.append(line)
            flush()
            continue
        prose.append(line)
    flush()
    return "\n".join(out)


def _summary_line(cls: type) -> str:
    """The first sentence of a class's manual, without its name and without reST markup."""
    doc = inspect.getdoc(cls) or ""
    para = " ".join(_inline(doc.strip().split("\n\n", 1)[0], "").split())
    name = cls.__name__
    for sep in (" — ", " - ", ": "):
        if para.startswith(name + sep):
            para = para[len(name) + len(sep) :]
            break
    m = re.match(r"(.+?\.)(\s|$)", para)
    return m.group(1) if m else para


def _extras(cls: type) -> list[str]:
    """Drop reasons, modeled cost and task-root status: what the class declares besides its args."""
    extras = []
    if getattr(cls, "drop_reasons", ()):
        extras.append("drop reasons: " + ", ".join(cls.drop_reasons))
    cost = getattr(cls, "cost_ns", None)
    if cost is not None and not isinstance(cost, property):
        extras.append(f"modeled cost: T0={cost[0]:g} ns + T1={cost[1]:g} ns per packet")
    if getattr(cls, "task_root", False):
        extras.append("task root (owns a task)")
    return extras


def manual(cls: type, fmt: str = "text") -> str:
    """A module's whole manual: its docstring (what it does, gates, drop reasons, an example),
    then the argument table generated from its ``Arg`` declarations, then what else it declares."""
    doc = inspect.getdoc(cls) or "(no manual)"
    table = render_args(getattr(cls, "args", ()), fmt)
    extras = _extras(cls)
    if fmt == "markdown":
        head = f"## {cls.__name__}\n\n`{cls.__module__}`"
        body = "```text\n" + doc + "\n```"
        tail = "\n".join(f"- {e}" for e in extras)
        return "\n\n".join(p for p in (head, body, table, tail) if p)
    head = f"{cls.__name__}  ({cls.__module__})"
    return "\n\n".join([head, plain_doc(doc), table, "\n".join(extras)]).rstrip()


def modules_cmd(
    name: Optional[str] = typer.Argument(None, help="a module class: print its manual"),
    markdown: bool = typer.Option(False, "--markdown", help="print the manual as markdown"),
) -> None:
    """List the network functions, or print one's manual and arguments."""
    reg = nf.registry()
    console = Console(highlight=False)
    if name is None:
        t = Table(box=None, pad_edge=False, header_style="bold")
        t.add_column("module")
        t.add_column("summary")
        for n in sorted(reg):
            t.add_row(n, escape(_summary_line(reg[n])))
        console.print(t)
        return
    cls = reg.get(name) or {k.lower(): v for k, v in reg.items()}.get(name.lower())
    if cls is None:
        close = difflib.get_close_matches(name, list(reg), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f" (modules: {', '.join(sorted(reg))})"
        raise fail(f"unknown module {name!r}{hint}")
    if markdown:
        typer.echo(manual(cls, "markdown"))
        return
    text = manual(cls)
    title, rest = text.split("\n", 1)
    console.print(f"[bold]{escape(title)}[/bold]")
    console.print(rest, markup=False, soft_wrap=True)
