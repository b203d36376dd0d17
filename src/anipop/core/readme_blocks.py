"""Marked blocks of README.md that a pipeline step writes, so no figure in the README is copied by hand.

A block sits between `<!-- NAME:begin (written by WRITER) -->` and `<!-- NAME:end -->`; the step that owns the
figures (`anipop report`, `anipop replay`) renders it from the reports it wrote and replaces the block, and a test
renders it again from the committed reports and compares: a README figure that differs from reports/ fails CI.
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str, writer: str) -> tuple[str, str]:
    """The begin and end comment lines of block `name`, written by the command `writer`."""
    return f"<!-- {name}:begin (written by `{writer}`) -->", f"<!-- {name}:end -->"


def block_of(text: str, begin: str, end: str) -> str | None:
    """The block (markers included) in `text`, or None when it has no such block."""
    if text.count(begin) != 1 or text.count(end) != 1:
        return None
    head, rest = text.split(begin, 1)
    return begin + rest.split(end, 1)[0] + end


def update_readme(readme: Path, block: str, begin: str, end: str) -> bool:
    """Replace the marked block in README.md with `block` (markers included); False when the README or its
    markers are absent (a workspace without a README: nothing written)."""
    if not readme.exists():
        return False
    text = readme.read_text(encoding="utf-8")
    current = block_of(text, begin, end)
    if current is None:
        return False
    if current != block:
        readme.write_text(text.replace(current, block), encoding="utf-8")
    return True
