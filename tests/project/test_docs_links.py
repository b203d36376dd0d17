"""The README and the pages under docs/ link to each other, to reports/ and to screenshots by relative paths:
every one must resolve in the checkout (a moved page or a renamed report breaks a newcomer's first click)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")  # markdown links and images, anchors dropped


def test_every_relative_link_of_the_readme_and_docs_resolves():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert len(pages) > 1
    broken = [(page.relative_to(REPO).as_posix(), target) for page in pages
              for target in LINK.findall(page.read_text(encoding="utf-8"))
              if not target.startswith(("http://", "https://")) and not (page.parent / target).exists()]
    assert not broken, broken
