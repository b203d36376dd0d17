"""End to end: `dvc repro` runs every stage on a slice of the real MAL data, then reports nothing changed.

The pipeline is copied into a fresh git + DVC repository in tmp, so the test exercises dvc.yaml exactly as
a user's clone would, without touching the developer's workspace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import CHARACTERS_SAMPLE, REAL_DATA, REPO_ROOT, workspace_params

pytestmark = pytest.mark.e2e


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)  # a guard against a hang, far above the usual few minutes
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory) -> Path:
    if not REAL_DATA.exists():
        pytest.skip(f"real MAL sample not found at {REAL_DATA}")
    repo = tmp_path_factory.mktemp("anipop-e2e")
    shutil.copy(REPO_ROOT / "dvc.yaml", repo)
    shutil.copytree(REPO_ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = workspace_params()
    params["ingest"].update(local_path=str(REAL_DATA.resolve()), limit=400,
                            characters_dir=str(CHARACTERS_SAMPLE.resolve()))
    # every default model and stage, with fewer resamples and folds: the same code paths in less time
    params["evaluate"].update(bootstrap_samples=20, cv_folds=3)
    params["train"]["pitch"]["stack_folds"] = 3
    # two field-ablation sets that between them reach every model it fits (meta_ridge on a field, ridge and
    # tfidf_benchmark on the synopsis): all 14 took 150 of the pipeline's 320 s here, for no path the two miss
    params["field_ablation"]["input_sets"] = ["studios", "synopsis"]
    # the ablation table's input sets: each kind of input once (text, characters, portraits, every field; a list
    # field, a number, staff, and cast, which this slice lacks: skipped with a notice) instead of all 16 (60 fits
    # and as many MLflow children) for no path these miss
    params["train"]["ablations"] = ["synopsis", "characters", "images", "metadata", "studios", "year", "staff", "cast"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], repo)
    _run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    return repo


def test_dvc_repro_runs_every_stage_then_is_a_no_op(pipeline_repo):
    first = _run([sys.executable, "-m", "dvc", "repro"], pipeline_repo)
    for stage in ("ingest", "prepare", "validate", "embed", "train", "backtest", "multimodal", "evaluate",
                  "register", "field_ablation", "report"):
        assert f"Running stage '{stage}'" in first.stdout
    assert "| train_mean |" in first.stdout  # the metrics table names the baseline next to the model

    metrics = json.loads((pipeline_repo / "reports" / "metrics.json").read_text())
    baseline = metrics.pop("train_mean")
    model_metrics = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    assert model_metrics, "no model metrics written"
    assert baseline["pearson"] == 0.0
    for values in model_metrics.values():
        assert set(values) >= {"mse", "mae", "r2", "pearson", "spearman"}

    report = json.loads((pipeline_repo / "data" / "prepared" / "report.json").read_text())
    quarantine = pd.read_parquet(pipeline_repo / "data" / "prepared" / "quarantine.parquet")
    anime_quarantined = int((quarantine["table"] == "anime").sum())  # character rows are quarantined too
    assert report["anime_kept"] + anime_quarantined == 400  # every row is either kept or quarantined
    characters = report["characters"]  # the real sample's rows: kept or quarantined, none lost
    character_rows = int((quarantine["table"] == "characters").sum())
    assert characters["kept_rows"] + character_rows == 832
    assert (pipeline_repo / "reports" / "multimodal.json").exists()
    assert "| metadata field alone | studios | meta_ridge |" in (pipeline_repo / "reports" / "results.md").read_text()

    second = _run([sys.executable, "-m", "dvc", "repro"], pipeline_repo)
    assert "Data and pipelines are up to date" in second.stdout
    assert "Running stage" not in second.stdout


def test_mlflow_has_the_run_with_provenance(pipeline_repo):
    import mlflow

    if not (pipeline_repo / "mlflow.db").exists():
        pytest.skip("pipeline test did not run")
    store = f"sqlite:///{pipeline_repo / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    experiment = client.get_experiment_by_name("anipop")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) > 3  # one pipeline run, one child per input set and model
    run = parents[0]
    assert run.data.tags["data_hash"].startswith("dvc:")
    assert "git_commit" in run.data.tags
    assert any(r.info.run_name == "train_mean" and "spearman_ci_low" in r.data.metrics for r in runs)
    assert run.data.params["ingest.limit"] == "400"
    champion = client.get_model_version_by_alias("anipop", "champion")
    assert str(champion.version) == "1" and champion.tags["data_hash"] == run.data.tags["data_hash"]
    assert client.get_run(champion.run_id).data.tags["mlflow.parentRunId"] == run.info.run_id
