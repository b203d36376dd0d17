"""No figure in README.md or docs/ is typed by hand: generated blocks must equal what the committed reports render."""

from __future__ import annotations

from pathlib import Path

import pytest

from anipop.core import readme_blocks
from anipop.core.config import load_params
from anipop.core.utils import read_json
from anipop.monitoring import replay_report
from anipop.studies.results_table import README_BEGIN, README_END, readme_block

REPO = Path(__file__).resolve().parents[2]


def _committed(name: str) -> dict:
    return read_json(REPO / "reports" / name)


def test_the_readme_results_block_is_what_the_committed_reports_render():
    params = load_params(REPO / "params.yaml")
    rendered = readme_block(params.train, _committed("cv_details.json"), _committed("temporal_details.json"),
                            _committed("metrics.json"), _committed("rolling_details.json"))
    found = readme_blocks.block_of((REPO / "README.md").read_text(encoding="utf-8"), README_BEGIN, README_END)
    assert found is not None, "README.md lost its results block markers"
    assert found == rendered, "README.md's results differ from reports/: run `dvc repro report` and commit"
    assert "pitch_stack" in found and "length_only" in found and "train_mean" in found


def test_the_retraining_pages_replay_block_is_what_the_committed_replay_report_renders():
    rendered = replay_report.render_readme_block(_committed("replay.json"))
    page = REPO / replay_report.RETRAINING_PAGE
    found = readme_blocks.block_of(page.read_text(encoding="utf-8"), replay_report.README_BEGIN,
                                   replay_report.README_END)
    assert found == rendered, f"{page.name}'s replay figures differ from reports/replay.json: `anipop replay --report-only`"
    target = page.parent / "../reports/replay.md"
    assert target.exists()  # the block's link resolves from docs/


def test_a_changed_figure_is_rewritten_and_nothing_else_moves(tmp_path):
    begin, end = readme_blocks.markers("results", "anipop report")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro 0.5\n{begin}\n| m | 0.700 |\n{end}\noutro 0.9\n", encoding="utf-8")
    assert readme_blocks.update_readme(readme, f"{begin}\n| m | 0.712 |\n{end}", begin, end)
    assert readme.read_text(encoding="utf-8") == f"intro 0.5\n{begin}\n| m | 0.712 |\n{end}\noutro 0.9\n"
    readme.write_text("no markers here\n", encoding="utf-8")
    assert not readme_blocks.update_readme(readme, f"{begin}\nx\n{end}", begin, end)
    assert readme.read_text(encoding="utf-8") == "no markers here\n"
    assert not readme_blocks.update_readme(tmp_path / "absent.md", "x", begin, end)


@pytest.mark.parametrize("text", ["<!-- results:begin (written by `anipop report`) -->\nonly a start\n",
                                  "<!-- results:begin (written by `anipop report`) -->\na\n<!-- results:end -->\n" * 2])
def test_a_readme_with_a_missing_or_doubled_marker_has_no_block(text):
    assert readme_blocks.block_of(text, *readme_blocks.markers("results", "anipop report")) is None
