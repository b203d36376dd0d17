"""The flows' command lines refuse a wrong --project in one line, before any Prefect server starts."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT


def _run(script: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "flows" / script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_pipeline_with_a_project_that_does_not_exist_says_so_in_one_line(tmp_path):
    result = _run("pipeline.py", "--project", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (f"error: {tmp_path / 'nowhere' / 'dvc.yaml'}: not found (--project names the "
                                     f"folder holding dvc.yaml and params.yaml)")


def test_retrain_with_a_missing_params_file_says_so_in_one_line(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    result = _run("retrain.py", "--project", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'params.yaml'}: not found (run anipop from the project root)"
