"""`dvc metrics show` is one short line: reports/summary.json, the primary model's headline figures beside both
baselines', is the only declared metrics file, and it is what the committed reports give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from anipop.core.config import load_params
from anipop.core.utils import read_json
from anipop.studies.results_table import summary_metrics

REPO = Path(__file__).resolve().parents[2]


def _declared_metrics() -> list[str]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return [next(iter(entry)) if isinstance(entry, dict) else entry
            for stage in stages.values() for entry in stage.get("metrics", [])]


def test_summary_json_is_the_only_metrics_file_and_what_the_committed_reports_give():
    assert _declared_metrics() == ["${paths.reports_dir}/summary.json"]
    params = load_params(REPO / "params.yaml")
    reports = REPO / "reports"
    expected = summary_metrics(params.train, read_json(reports / "cv_details.json"),
                               read_json(reports / "temporal_details.json"), read_json(reports / "metrics.json"),
                               read_json(reports / "rolling_details.json"))
    assert read_json(reports / "summary.json") == expected, "reports/summary.json is stale: `dvc repro report`"
    cv = read_json(reports / "cv_details.json")["models"][params.train.model]["spearman"]["mean"]
    assert expected["spearman"]["cv"] == round(cv, 4)
    assert set(expected) == {"spearman", "mae_1_10", "length_only", "train_mean"}  # both baselines beside it


def test_dvc_metrics_show_prints_lines_a_terminal_can_hold():
    shown = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout
    widths = [len(line) for line in shown.splitlines()]
    assert widths and max(widths) <= 240, shown  # it printed 17,490 characters a line with every table declared
