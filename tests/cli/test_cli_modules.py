"""``tailgate modules NAME``: the manual is the docstring, then the argument table generated from
the class's ``Arg`` declarations, then what else the class declares."""

import re

from typer.testing import CliRunner

from tailgate import nf
from tailgate.cli import app
from tailgate.cli.modules import manual, plain_doc
from tailgate.core.args import render_args


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_manual_is_the_docstring_then_the_generated_table():
    res = invoke("modules", "RateLimiter")
    assert res.exit_code == 0
    out = res.stdout
    assert out.index("Example") < out.index("Arguments:") < out.index("drop reasons: over_rate")
    row = next(line for line in out.splitlines() if line.lstrip().startswith("burst_bits"))
    assert row.split()[:5] == ["burst_bits", "float", "12144", "bits", ">="]
    assert "one 1518-byte frame" in row
    assert render_args(nf.RateLimiter.args) in out


def test_every_manual_has_a_table_with_a_unit_in_every_row():
    for name, cls in nf.registry().items():
        text = manual(cls)
        if not cls.args:
            assert "Arguments: none." in text, name
            continue
        lines = text[text.index("Arguments:"):].splitlines()
        header, rows = lines[1].split(), lines[2 : 2 + len(cls.args)]
        assert header == ["name", "type", "default", "unit", "range", "help"], name
        unit_col = lines[1].index("unit")
        for a, row in zip(cls.args, rows):
            assert row.split()[0] == a.name and row[unit_col:].split()[0] == a.unit, (name, row)


def test_markdown_manual():
    res = invoke("modules", "NAPT", "--markdown")
    assert res.exit_code == 0
    out = res.stdout
    assert out.startswith("## NAPT")
    assert "| name | type | default | unit | range | help |" in out
    assert "| `timeout_s` | float | `300` | s | >= 1e-06 | idle time after which a mapping expires |" in out
    assert "| `external_ip` | any | `required` | - |" in out
    assert "- drop reasons: not_ipv4, unsupported, fragment, malformed, no_mapping, ports_exhausted" in out


def test_manual_renders_rest_for_the_terminal():
    """No Sphinx markup reaches the terminal: roles read as their target, ``x`` as `x`, "::" as
    ":"; doctest lines are printed exactly as written."""
    for name, cls in nf.registry().items():
        text = manual(cls)
        doctest_lines = [ln for ln in (cls.__doc__ or "").splitlines() if ln.strip().startswith((">>>", "..."))]
        prose = [ln for ln in text.splitlines() if not ln.strip().startswith((">>>", "..."))]
        for ln in prose:
            assert not re.search(r":[a-z]+:`", ln), (name, ln)
            assert "``" not in ln, (name, ln)
            assert not ln.rstrip().endswith("::"), (name, ln)
        for ln in doctest_lines:
            assert ln.strip() in text, (name, ln)
    res = invoke("modules", "HashSplit")
    assert res.exit_code == 0
    assert "Gates: 1 in / `gates` out." in res.stdout
    assert "Related: RandomSplit (per packet, not per flow)" in res.stdout
    assert ":class:" not in res.stdout and "``" not in res.stdout


def test_plain_doc_roles_literals_and_blocks():
    doc = ("See :class:`tailgate.nf.ACL`, :func:`~tailgate.nf.lookup.load_routes`, :rfc:`3022`,\n"
           ":class:`the buffer <tailgate.nf.fbuffer.FractionalBuffer>` and ``a`` /\n"
           "``b  c``. The table::\n\n"
           "    ``kept`` :class:`kept`\n\n"
           "Back to ``prose``.\n\n"
           ">>> x = ``1``  # kept\n")
    assert plain_doc(doc).split("\n") == [
        "See tailgate.nf.ACL, load_routes(), RFC 3022,",
        "the buffer and `a` /",
        "`b  c`. The table:",
        "",
        "    ``kept`` :class:`kept`",
        "",
        "Back to `prose`.",
        "",
        ">>> x = ``1``  # kept",
        "",
    ]


def test_summaries_are_sentences_without_markup():
    res = invoke("modules")
    assert res.exit_code == 0
    flat = " ".join(res.stdout.split())
    assert "HashSplit spreads flows over its output gates by a hash of the 5-tuple." in flat
    assert "Merge joins its input gates into output gate 0" in flat
    assert "SetMetadata sets one metadata column of every packet to a fixed value." in flat
    assert "``" not in res.stdout and ":class:" not in res.stdout
