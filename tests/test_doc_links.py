"""README.md, CONTRIBUTING.md and docs/*.md: every relative link points to a file (and, with
``#anchor``, to a heading) that exists, and the pages speak to a reader of this repository alone.

Anchors are GitHub's heading slugs: lower case, punctuation other than ``-`` and ``_`` dropped,
spaces turned into ``-``, and ``-1``, ``-2`` … appended to repeated headings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
# what a reader of the repository cannot follow: the project's internal tracker and spec
FOREIGN = re.compile(r"SPEC\s*§|\bissue\s+#?\d+|\bcommit\s+[0-9a-f]{7,40}\b|\.\./shared/SPEC")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` outside fenced code blocks, with inline code removed."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, re.sub(r"`[^`]*`", "", line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (repeats numbered as GitHub numbers them)."""
    seen: dict[str, int] = {}
    found = set()
    for _number, line in _prose_lines(path.read_text(encoding="utf-8")):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        base = slug(heading.group(1))
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """``(line, target)`` of every relative link of a Markdown file (web and mail links left out)."""
    return [
        (number, target)
        for number, line in _prose_lines(path.read_text(encoding="utf-8"))
        for target in LINK.findall(line)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)
    ]


def broken_link(page: Path, target: str, root: Path = ROOT) -> str | None:
    """Why ``target`` (relative to ``page``, inside ``root``) does not resolve, or None."""
    file_part, _, anchor = target.partition("#")
    destination = (page.parent / file_part).resolve() if file_part else page
    if not destination.exists():
        return f"{file_part} does not exist"
    if root not in destination.parents and destination != root:
        return f"{file_part} lies outside the repository"
    if anchor:
        if destination.suffix != ".md":
            return f"#{anchor} points into {file_part}, which is not Markdown"
        if anchor not in anchors(destination):
            return f"{destination.name} has no heading #{anchor}"
    return None


def test_slug_and_anchor_rules():
    """Slugs as GitHub makes them, on headings of the kinds the pages use."""
    assert slug("The `neuraleq` command") == "the-neuraleq-command"
    assert slug("SAFE-DB, warm vs bright, over repeated contributor splits") == (
        "safe-db-warm-vs-bright-over-repeated-contributor-splits"
    )
    assert (
        slug("Later runs (2-core Intel Xeon, jax 0.10.2)")
        == "later-runs-2-core-intel-xeon-jax-0102"
    )
    assert slug("Data sets and their licences") == "data-sets-and-their-licences"


def test_anchors_number_repeated_headings_and_skip_code(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A\n## B\n```bash\n# not a heading\n```\n## B\n[x](#b-1) [y](q.md#z)\n")
    assert anchors(page) == {"a", "b", "b-1"}
    assert links(page) == [(7, "#b-1"), (7, "q.md#z")]
    assert broken_link(page, "#b-1", tmp_path) is None
    assert broken_link(page, "#b-2", tmp_path) == "p.md has no heading #b-2"
    assert broken_link(page, "q.md#z", tmp_path) == "q.md does not exist"
    (tmp_path / "q.md").write_text("# Z\n")
    assert broken_link(page, "q.md#z", tmp_path) is None
    assert broken_link(page, "../p.md", tmp_path) in (
        "../p.md does not exist",
        "../p.md lies outside the repository",
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = [
        f"{page.relative_to(ROOT)}:{line}: ({target}): {why}"
        for line, target in links(page)
        if (why := broken_link(page, target))
    ]
    assert not broken, "\n".join(broken)


def test_docs_are_reachable_from_readme():
    """Every page of docs/ is linked from README or from a page README links to."""
    reached, frontier = set(), [ROOT / "README.md"]
    while frontier:
        page = frontier.pop()
        for _line, target in links(page):
            destination = (page.parent / target.partition("#")[0]).resolve()
            if destination.suffix == ".md" and destination.is_file() and destination not in reached:
                reached.add(destination)
                frontier.append(destination)
    unreached = {p.name for p in (ROOT / "docs").glob("*.md")} - {p.name for p in reached}
    assert not unreached, f"docs pages no page links to: {sorted(unreached)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_cite_nothing_a_reader_cannot_see(page):
    cited = [
        f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1)
        if FOREIGN.search(line)
    ]
    assert not cited, "\n".join(cited)
