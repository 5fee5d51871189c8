"""The front door and the guides hold together: every link resolves, the README fits a screen
or two, and every page the code cites exists, with the section it names."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CODE_BLOCK = re.compile(r"```.*?```", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CITED_PAGE = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings (punctuation dropped, spaces to hyphens, repeats numbered)."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", CODE_BLOCK.sub("", page.read_text()), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(CODE_BLOCK.sub("", page.read_text())):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in heading_anchors(dest):
            broken.append(f"{target} (no such section)")
    return broken


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return [REPO / name for name in names if (REPO / name).is_file()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_checker_sees_a_broken_link_and_a_missing_section(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n[x](b.md) [y](#nowhere) [z](#title)\n")
    assert broken_links(tmp_path / "a.md") == ["b.md (no such file)", "#nowhere (no such section)"]


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    first_screen = "\n".join(text.splitlines()[:40])
    assert "![" in first_screen, "the first screen shows a picture"
    for shown in ("scripts/setup.sh", "spin-diff fit", "import spin_diff", "spin-diff train"):
        assert shown in text.replace("from spin_diff", "import spin_diff"), shown


def test_no_file_cites_a_page_outside_the_repository_or_an_issue_number():
    outside = re.compile(r"REFERENCE\.md|DEVELOPERS\.md|\.\./shared")
    issue = re.compile(r"\bissues? ?#?\d+\b|\bissue-\d+\b", re.I)
    found = []
    for path in tracked_files():
        if path.suffix not in (".py", ".md", ".yaml", ".toml", ".sh", ".txt") or path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if outside.search(line) or issue.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:80]}")
    assert found == []


def test_every_docs_page_the_code_cites_exists_with_its_section():
    missing = []
    for path in tracked_files():
        if path.suffix not in (".py", ".yaml"):
            continue
        for page, anchor in CITED_PAGE.findall(path.read_text()):
            target = REPO / "docs" / page
            if not target.is_file() or (anchor and anchor not in heading_anchors(target)):
                missing.append(f"{path.relative_to(REPO)}: docs/{page}#{anchor}")
    assert missing == []


DOTTED = re.compile(r"(?<!format: )\bspin_diff(?:\.\w+)+")  # a checkpoint's format tag is no module


def resolves(dotted: str) -> bool:
    """Whether ``spin_diff.a.b.c`` names a module, or an attribute of one."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def test_every_module_the_docs_name_exists():
    missing = sorted({f"{page.relative_to(REPO)}: {name}" for page in PAGES for name in DOTTED.findall(" ".join(page.read_text().split()))
                      if not resolves(name)})  # fmt: skip
    assert missing == []
    assert not resolves("spin_diff.no_such_module") and not resolves("spin_diff.body.model.no_such_name")


@pytest.mark.slow
def test_the_readme_python_example_runs_and_prints_what_the_readme_says(capsys):
    text = (REPO / "README.md").read_text()
    code = re.search(r"## Fit from Python.*?```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert f"It prints `{printed}`" in " ".join(text.split()), printed
