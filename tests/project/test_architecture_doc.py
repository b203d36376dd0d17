"""docs/architecture.md stays true to the code: its list of long modules is the list of modules over 300 lines."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO_ROOT

LONG = 300


def test_every_module_over_300_lines_and_only_those_has_its_reason_in_the_architecture_page():
    source = REPO_ROOT / "src" / "anipop"
    long_modules = {str(path.relative_to(source)) for path in source.rglob("*.py")
                    if len(path.read_text(encoding="utf-8").splitlines()) > LONG}
    page = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = page.split("Modules over 300 lines", 1)[1].split("\n\n", 2)[1]
    listed = dict(re.findall(r"^\| `([^`]+\.py)` \| (.+) \|$", section, flags=re.M))
    assert set(listed) == long_modules
    assert all(len(reason) > 20 for reason in listed.values())  # a reason, not a placeholder


def _listed_rooms(page: str) -> list[str]:
    """The top-level names of src/anipop/ in the page's layout block, in their order (a folder keeps its '/')."""
    block = page.split("```\nsrc/anipop/\n", 1)[1].split("```", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.startswith("  ") and not line.startswith("   ")]


def _imported_rooms(room: Path, source: Path) -> set[str]:
    """The top-level names of src/anipop/ that the room's code imports (anipop.<name>...)."""
    files = sorted(room.rglob("*.py")) if room.is_dir() else [room]
    found = set()
    for file in files:
        for name in re.findall(r"^\s*(?:from|import) anipop\.(\w+)", file.read_text(encoding="utf-8"), flags=re.M):
            found.add(f"{name}/" if (source / name).is_dir() else f"{name}.py")
    return found


def test_the_layout_lists_every_room_and_each_imports_only_rooms_above_it():
    source = REPO_ROOT / "src" / "anipop"
    rooms = {f"{p.name}/" if p.is_dir() else p.name for p in source.iterdir()
             if p.name not in {"__init__.py", "__pycache__"} and (p.is_dir() or p.suffix == ".py")}
    listed = _listed_rooms((REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert sorted(listed) == sorted(rooms)  # each once, none missing
    below = {room: set(listed[i + 1:]) for i, room in enumerate(listed)}
    upward = {room: sorted((_imported_rooms(source / room.rstrip("/"), source) - {room}) & below[room])
              for room in listed}
    assert not any(upward.values()), {room: names for room, names in upward.items() if names}
