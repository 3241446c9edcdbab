"""The argument table of a manual, rendered from declarations; and the check that each says its
unit and what it is for."""

import pytest

from tailgate.core.args import REQUIRED, Arg, any_value, float_list, render_args, undocumented

DECL = (
    Arg("rate_pps", float, 1e6, unit="pps", help="offered rate", min=0),
    Arg("gates", int, 2, unit="-", help="output | gates", min=1, max=1 << 20),
    Arg("mode", str, "fast", unit="-", help="how", choices=("fast", "timed")),
    Arg("path", str, unit="-", help="the file"),
    Arg("weights", float_list, None, unit="-", help="shares"),
    Arg("rules", any_value, None, unit="-", help="anything"),
)


def test_text_table_lines_up_and_says_everything():
    lines = render_args(DECL).splitlines()
    assert lines[0] == "Arguments:"
    assert lines[1].split() == ["name", "type", "default", "unit", "range", "help"]
    col = {c: lines[1].index(c) for c in ("type", "default", "unit", "range", "help")}
    rows = {ln.split()[0]: ln for ln in lines[2:]}
    assert rows["rate_pps"][col["default"]:].split()[0] == "1000000"
    assert rows["gates"][col["range"]:col["help"]].strip() == "1..1048576"
    assert rows["mode"][col["range"]:col["help"]].strip() == "one of fast, timed"
    assert rows["path"][col["default"]:].split()[0] == "required"
    assert rows["weights"][col["type"]:col["default"]].strip() == "list of float"
    assert rows["rules"][col["type"]:col["default"]].strip() == "any"
    assert rows["rate_pps"][col["help"]:] == "offered rate"
    assert all(not ln.endswith(" ") for ln in lines)


def test_markdown_table_escapes_pipes():
    md = render_args(DECL, fmt="markdown").splitlines()
    assert md[2] == "| name | type | default | unit | range | help |"
    assert "| `gates` | int | `2` | - | 1..1048576 | output \\| gates |" in md
    assert "| `path` | str | `required` | - |  | the file |" in md


def test_no_arguments_and_bad_format():
    assert render_args(()) == "Arguments: none."
    assert render_args((), fmt="markdown") == "Arguments: none."
    with pytest.raises(ValueError, match="fmt must be"):
        render_args(DECL, fmt="html")


def test_undocumented_names_args_without_unit_or_help():
    decl = (Arg("a", int, 0), Arg("b", int, 0, unit="-"), Arg("c", int, 0, help="x"),
            Arg("d", int, 0, unit="-", help="x"))
    assert undocumented(decl) == ["a", "b", "c"]
    assert repr(REQUIRED) == "required" and Arg("p", str).required


def test_integer_bounds_print_as_integers():
    """A 32-bit or 64-bit bound reads 4294967295, never 4.29497e+09."""
    decl = (
        Arg("seed", int, 0, unit="-", help="hash seed", min=0, max=0xFFFFFFFF),
        Arg("key", int, 0, unit="-", help="64-bit key", min=0, max=(1 << 64) - 1),
        Arg("limit", float, 0.0, unit="-", help="a whole float bound", max=4294967295.0),
    )
    text = render_args(decl)
    assert "0..4294967295" in text
    assert "0..18446744073709551615" in text
    assert "<= 4294967295" in text
    assert "e+" not in text
