"""The replay's figures are generated, never copied: reports/replay.md is what anipop.monitoring.replay_report
renders from reports/replay.json (docs/retraining.md's block: tests/studies/test_readme_figures.py), and the replay's plan and workspace are apart
from the user's."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, params_in

from anipop.core.config import ConfigError, load_params
from anipop.monitoring.replay import add_months, replay_plan, workspace_params
from anipop.monitoring.replay_report import render_markdown

REPLAY = REPO_ROOT / "reports" / "replay.json"


@pytest.fixture(scope="module")
def result() -> dict:
    if not REPLAY.exists():
        pytest.fail("reports/replay.json is missing: run `anipop replay` (docs/retraining.md's figures come from it)")
    return json.loads(REPLAY.read_text())


def test_reports_replay_md_is_the_one_rendered_from_reports_replay_json(result):
    assert (REPO_ROOT / "reports" / "replay.md").read_text(encoding="utf-8") == render_markdown(result)


def test_the_plan_steps_by_months_and_puts_the_retraining_flows_own_policy_first(tmp_path):
    params = params_in(tmp_path, replay={"start": date(2014, 1, 31), "end": date(2015, 1, 1), "every_months": 6,
                                         "policies": ("test_split", "always")})
    plan = replay_plan(params, REPO_ROOT)
    assert plan.dates == (date(2014, 1, 31), date(2014, 7, 31)) and plan.future == date(2015, 1, 31)
    assert add_months(date(2016, 1, 31), 1) == date(2016, 2, 29)
    assert plan.policies == (params.registry.policy, "test_split", "always")  # registry.policy: always replayed
    assert plan.model_name("always") == "anipop-replay-always"


def test_the_workspace_params_keep_the_users_names_and_caches_apart(tmp_path):
    project = REPO_ROOT
    plan = replay_plan(load_params(REPO_ROOT / "params.yaml"), project)
    raw = workspace_params(project, plan, date(2016, 1, 1))
    user = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert raw["registry"]["model_name"] == f"anipop-replay-{user['registry']['policy']}" != user["registry"]["model_name"]
    assert raw["registry"]["policy"] == user["registry"]["policy"]
    assert raw["mlflow"]["experiment"] == "anipop-replay-steps" != user["mlflow"]["experiment"]
    assert raw["ingest"]["as_of"] == "2016-01-01" and Path(raw["ingest"]["local_path"]).is_absolute()
    assert raw["paths"]["embedding_cache_dir"] == str((project / user["paths"]["embedding_cache_dir"]).resolve())
    assert raw["evaluate"]["cv_folds"] == 0 and raw["field_ablation"]["enabled"] is False  # side studies off
    assert raw["mlflow"]["tracking_uri"] == f"sqlite:///{(project / 'mlflow.db').resolve()}"


def test_a_replay_sharing_the_users_model_name_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["replay"]["model_name"] = raw["registry"]["model_name"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="replay.model_name and replay.experiment must differ"):
        load_params(path)


def test_a_replay_step_runs_the_stages_registration_needs_and_no_side_study(tmp_path):
    """DVC's own graph of the project's dvc.yaml: register and what it reads, none of the side studies."""
    import shutil
    import subprocess
    import sys

    from conftest import REPO_ROOT

    from anipop.orchestration import stage_and_its_ancestors

    for name in ("dvc.yaml", "params.yaml"):  # dvc.yaml reads its paths from params.yaml
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    assert stage_and_its_ancestors(tmp_path, "register") == {"ingest", "prepare", "validate", "embed", "train", "backtest", "rolling",
                                     "evaluate", "register"}
