"""README.md's Benchmark section states only what docs/bench.md, a generated file, says."""
from pathlib import Path

from tailgate.bench.markdown import block, numbers

ROOT = Path(__file__).resolve().parents[2]


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end >= 0 else len(text)]


def test_readme_benchmark_block_is_the_generated_files():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    generated = (ROOT / "docs" / "bench.md").read_text(encoding="utf-8")
    section = _section(readme, "## Benchmark")
    assert block(section, "README.md") == block(generated, "docs/bench.md"), (
        "README.md's bench block differs from docs/bench.md: "
        "tailgate bench --markdown --runs 3 --out docs/ --readme README.md")


def test_readme_benchmark_prose_numbers_are_in_the_generated_file():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    generated = (ROOT / "docs" / "bench.md").read_text(encoding="utf-8")
    section = _section(readme, "## Benchmark")
    lines = section.splitlines()
    begin = next(i for i, ln in enumerate(lines) if ln.startswith("<!-- bench:begin"))
    end = next(i for i, ln in enumerate(lines) if ln.startswith("<!-- bench:end"))
    prose = "\n".join(lines[:begin] + lines[end + 1:])
    missing = numbers(prose) - numbers(generated)
    assert not missing, f"README.md's Benchmark section states {sorted(missing)}, which docs/bench.md does not"


def test_committed_bench_file_is_a_full_run_of_three_or_more():
    head = block((ROOT / "docs" / "bench.md").read_text(encoding="utf-8")).splitlines()[0]
    assert head.startswith("`tailgate bench --markdown --runs ") and "--quick" not in head, head
    assert int(head.split("--runs ")[1].split()[0].rstrip("`,")) >= 3, head
    assert "--suite" not in head, head   # every suite
