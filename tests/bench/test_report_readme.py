"""The README's numbers on request scheduling, Batchy and FaaSBatch are copies of the generated reports.

Each block of README.md between ``<!-- from docs/FILE.md:NAME -->`` and ``<!-- end docs/FILE.md:NAME -->``
must equal, line for line, the block that report writes between ``<!-- NAME: begin -->`` and
``<!-- NAME: end -->`` (the report states the date and machine it ran on). After regenerating a
report (``tailgate batchy report --out docs/``, ``tailgate sched report --out docs/``,
``tailgate faas report --out docs/``), copy the
blocks over with::

    .venv/bin/python tests/bench/test_report_readme.py --write
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARK = re.compile(r"<!-- from (?P<file>docs/[\w./-]+\.md):(?P<name>[\w-]+) -->\n(?P<body>.*?)\n?"
                  r"<!-- end (?P=file):(?P=name) -->", re.S)
#: the README sections whose numbers must come from the reports
SECTIONS = ("## Request scheduling", "## SLO-driven batch scheduling (Batchy)", "## Function batching (FaaSBatch)")


def report_block(path: Path, name: str) -> str | None:
    """The report's block NAME (between its begin and end markers), or None if it has none."""
    m = re.search(rf"<!-- {re.escape(name)}: begin -->\n(.*?)\n<!-- {re.escape(name)}: end -->", path.read_text(), re.S)
    return m.group(1) if m else None


def sections(text: str) -> list[str]:
    """The README's sections named in :data:`SECTIONS` (each to the next ``## ``)."""
    out = []
    for title in SECTIONS:
        start = text.index(title)
        end = text.find("\n## ", start + 1)
        out.append(text[start:end if end >= 0 else None])
    return out


def test_every_marked_readme_block_is_the_reports_block():
    text = README.read_text()
    marks = list(MARK.finditer(text))
    assert {m["file"] for m in marks} == {"docs/batchy.md", "docs/persephone.md", "docs/faasbatch.md"}, [
        m[0][:60] for m in marks]
    for m in marks:
        want = report_block(ROOT / m["file"], m["name"])
        assert want is not None, f"{m['file']} has no block {m['name']!r}"
        assert m["body"].strip("\n") == want.strip("\n"), (
            f"README's copy of {m['file']}:{m['name']} differs from the report; run "
            "`.venv/bin/python tests/bench/test_report_readme.py --write`")


def test_the_readme_sections_state_no_measured_number_outside_the_copied_blocks():
    for section in sections(README.read_text()):
        prose = MARK.sub("", re.sub(r"```.*?```", "", section, flags=re.S))
        found = re.findall(r"\d+(?:\.\d+)?\s*(?:×|x\b|ms\b|µs\b|Mpps|Mreq)|\d+\.\d+", prose)
        assert not found, f"numbers in the README not copied from a report: {found}"


def test_the_checks_catch_a_stale_copy(tmp_path):
    report = tmp_path / "r.md"
    report.write_text("x\n<!-- summary: begin -->\n| a | 1.00 |\n<!-- summary: end -->\n")
    assert report_block(report, "summary") == "| a | 1.00 |"
    readme = "<!-- from docs/r.md:summary -->\n| a | 2.00 |\n<!-- end docs/r.md:summary -->"
    m = MARK.search(readme)
    assert m["body"].strip("\n") != report_block(report, "summary")


def write() -> None:
    """Copy every marked block from its report into README.md."""
    text = README.read_text()

    def repl(m):
        body = report_block(ROOT / m["file"], m["name"])
        if body is None:
            raise SystemExit(f"{m['file']} has no block {m['name']!r}")
        return f"<!-- from {m['file']}:{m['name']} -->\n{body}\n<!-- end {m['file']}:{m['name']} -->"

    README.write_text(MARK.sub(repl, text))


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
    else:
        print(__doc__)
