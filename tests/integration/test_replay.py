"""The retraining replay end to end: `anipop replay` over 3 yearly steps of a slice of the real MAL data.

The replay runs the real retraining flow (Prefect, DVC stages, drift check, registry) in its own workspace and
registered models; the project here is a copy in tmp with a user champion registered before the replay, which
must come out untouched. Ridge only and few resamples: the same code paths in a few minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import CHARACTERS_SAMPLE, REAL_DATA, REPO_ROOT, workspace_params
from mlflow import MlflowClient
from scipy import stats

from anipop.registry.champion_history import champion_on, read_history
from anipop.serving.model_loading import load_model
from anipop.serving.scoring import score_pitches
from anipop.sources.as_of import latest_air_date

pytestmark = pytest.mark.e2e
STEPS = ("2003-01-01", "2004-01-01", "2005-01-01")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    if not REAL_DATA.exists():
        pytest.skip(f"real MAL data not found at {REAL_DATA}")
    project = tmp_path_factory.mktemp("replay-project")
    for item in ("src", "flows"):
        shutil.copytree(REPO_ROOT / item, project / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO_ROOT / "dvc.yaml", project)
    params = workspace_params()
    params["ingest"].update(local_path=str(REAL_DATA.resolve()), limit=900,
                            characters_dir=str(CHARACTERS_SAMPLE.resolve()))
    params["train"].update(model="ridge", models=["ridge"])
    params["evaluate"].update(bootstrap_samples=20)
    params["replay"].update(start=STEPS[0], end=STEPS[-1], policies=["test_split", "always"], bootstrap_samples=50)
    # a half-size test split: from the second step the champion is re-judged on over 100 anime it never saw
    params["replay"]["overrides"]["prepare.split"] = {"train": 0.45, "val": 0.05, "test": 0.5}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    store = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    user_version = _user_champion(client, project)
    user_runs = len(client.search_runs([client.get_experiment_by_name("anipop").experiment_id]))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(project / ".prefect-home"), "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run([sys.executable, "-m", "anipop.cli", "replay", "--params", str(project / "params.yaml")],
                            cwd=project, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    report = json.loads((project / "reports" / "replay.json").read_text())
    return project, client, report, user_version, user_runs


def _user_champion(client: MlflowClient, project: Path) -> str:
    """The user's own registered champion and one run of theirs: the replay must leave both alone."""
    experiment = client.create_experiment("anipop", artifact_location=(project / "mlruns").as_uri())
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("anipop")
    version = client.create_model_version("anipop", (project / "mlruns").as_uri(), run_id=run.info.run_id)
    client.set_registered_model_alias("anipop", "champion", version.version)
    return str(version.version)


def _step_dir(project: Path, index: int) -> Path:
    return project / ".replay" / "steps" / f"{index:02d}-{STEPS[index]}"


def test_every_step_retrained_and_each_policy_decided(replayed):
    _, client, report, _, _ = replayed
    assert [step["as_of"] for step in report["steps"]] == list(STEPS)
    assert all(step["retrained"] for step in report["steps"])
    always = [step["policies"]["always"] for step in report["steps"]]
    assert [r["version"] for r in always] == ["1", "2", "3"] and all(r["promoted"] for r in always)
    first = report["steps"][0]["policies"]["test_split"]
    assert first["promoted"] and first["reason"].startswith("no current champion")
    later = report["steps"][1]["policies"]["test_split"]["reason"]
    judged = int(later.split(" on the ")[1].split(" test anime")[0])
    assert judged > 100  # re-judged through the served interface in several requests
    history = read_history(client, "anipop-replay-always")
    assert [c.as_of for c in history] == list(STEPS)
    assert champion_on(history, date(2004, 6, 1), by="as_of").version == "2"
    assert [c.version for c in read_history(client, "anipop-replay-test_split")] == [
        step["policies"]["test_split"]["version"] for step in report["steps"] if step["policies"]["test_split"]["promoted"]]


@pytest.fixture
def project_store(replayed):
    """MLflow's process-wide tracking and registry URIs on the replayed project's store, restored afterwards
    (another test in this worker may have left them on a server it has stopped)."""
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    store = f"sqlite:///{replayed[0] / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    yield
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def test_live_metrics_are_on_exactly_the_anime_that_aired_before_the_next_step(replayed, project_store):
    project, client, report, _, _ = replayed
    views = [set(pd.read_parquet(_step_dir(project, i) / "anime.parquet")["anime_id"]) for i in range(len(STEPS))]
    cutoffs = [date.fromisoformat(day) - timedelta(days=90) for day in (*STEPS, "2006-01-01")]
    for index, step in enumerate(report["steps"]):
        live = pd.read_parquet(_step_dir(project, index) / "live_anime.parquet")
        ids = set(live["anime_id"])
        assert ids and not ids & views[index], "an anime the step's champion could have trained on was judged"
        if index + 1 < len(STEPS):
            assert views[index] | ids == views[index + 1]  # nothing skipped between two steps
        assert all(cutoffs[index] < latest_air_date(day) <= cutoffs[index + 1] for day in live["premiered"])
        assert step["live"]["anime"] == len(live)
        champion = step["policies"]["test_split"]["champion"]
        model = load_model(f"models:/anipop-replay-test_split/{champion['version']}")
        scores = score_pitches(model, pd.read_parquet(_step_dir(project, index) / "live_pitches.parquet"))["score"]
        expected = stats.spearmanr(live["score"], scores)[0]
        assert step["live"]["metrics"]["test_split"]["spearman"]["value"] == pytest.approx(expected, abs=1e-9)
        assert np.isfinite(step["live"]["vs_frozen"]["always"]["spearman"]["value"])


def test_each_retraining_wrote_a_drift_report_against_the_champion(replayed):
    project, _, report, _, _ = replayed
    for index, step in enumerate(report["steps"][1:], start=1):
        drift = step["drift"]
        own = report["policies"][0]  # registry.policy: the policy the retraining flow itself registers with
        served = report["steps"][index - 1]["policies"][own]["champion"]["version"]
        assert drift["status"] == "compared" and drift["champion_version"] == served
        # the anime new to the champion are exactly the ones the previous step was judged on
        assert drift["new_anime"] == report["steps"][index - 1]["live"]["anime"]
        assert drift["drifted_columns"]["share"] is not None and "synopsis_words" in drift["columns"]
    assert (project / ".replay" / "workspace" / "reports" / "drift" / "index.html").exists()
    workspace_stages = yaml.safe_load((project / ".replay" / "workspace" / "dvc.yaml").read_text())["stages"]
    assert "register" in workspace_stages and not {"paper_mode", "multimodal", "field_ablation", "report"} & set(
        workspace_stages)  # the steps spend no time on side studies
    assert (project / "reports" / "replay.md").read_text().startswith("# Does retraining help?")
    assert (project / "reports" / "plots" / "replay.png").stat().st_size > 10_000


def test_the_users_registry_and_runs_are_untouched(replayed):
    _, client, report, user_version, user_runs = replayed
    assert str(client.get_model_version_by_alias("anipop", "champion").version) == user_version
    assert [str(v.version) for v in client.search_model_versions("name='anipop'")] == [user_version]
    assert read_history(client, "anipop") == []
    assert len(client.search_runs([client.get_experiment_by_name("anipop").experiment_id])) == user_runs
    replay_runs = client.search_runs([client.get_experiment_by_name("anipop-replay").experiment_id])
    parents = [r for r in replay_runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(replay_runs) == 1 + len(STEPS)
    assert parents[0].info.run_id == report["mlflow_run_id"]
