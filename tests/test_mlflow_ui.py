"""The MLflow UI can compare models: checked over REST on a real tracking server, then (when a browser is
installed) in headless Chromium against `mlflow ui`.

A small real pipeline (ingest -> register) logs to a `mlflow server` on 127.0.0.1; the REST answers must
show one parent run with one child per (input set, model), baseline included, all with the same metric
keys, the prepared data as a dataset input per split, and the registered version pointing at the primary
model's child run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from fixtures_pipeline import pipeline_params, run_pipeline
from fixtures_servers import free_port, start, stop, wait_until_up

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_METRICS = {"mse", "mae", "r2", "pearson", "spearman", "kendall", "rmse_1_10",
                  "spearman_ci_low", "spearman_ci_high", "mse_ci_low", "mse_ci_high"}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A pipeline run (ridge, the TF-IDF benchmark and the train-mean baseline) logged to a real server."""
    tmp = tmp_path_factory.mktemp("mlflow-ui")
    port, log = free_port(), tmp / "server.log"
    store = f"sqlite:///{tmp / 'server.db'}"
    process = start([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
                     "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1",
                     "--port", str(port), "--workers", "1"], log, dict(os.environ))
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{uri}/health", process, log, timeout_s=300)
        params = pipeline_params(tmp / "work", tracking_uri=uri)
        params = params.model_copy(update={"train": params.train.model_copy(
            update={"models": ("ridge", "tfidf_benchmark"), "ablations": ("synopsis",)})})
        registered = run_pipeline(params)
        yield uri, store, params, registered
    finally:
        stop(process)


def _api(uri: str, path: str, **body) -> dict:
    response = httpx.post(f"{uri}/api/2.0/mlflow/{path}", json=body, timeout=30) if body else \
        httpx.get(f"{uri}/api/2.0/mlflow/{path}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _runs(uri: str, experiment_id: str) -> list[dict]:
    return _api(uri, "runs/search", experiment_ids=[experiment_id], max_results=1000)["runs"]


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run.get("data", run).get("tags", [])}


def test_each_input_set_and_model_is_a_child_of_one_parent_with_the_same_metric_keys(logged):
    uri, _, params, _ = logged
    experiment = _api(uri, f"experiments/get-by-name?experiment_name={params.mlflow.experiment}")["experiment"]
    runs = _runs(uri, experiment["experiment_id"])
    parents = [r for r in runs if "mlflow.parentRunId" not in _tags(r)]
    children = [r for r in runs if "mlflow.parentRunId" in _tags(r)]
    assert len(parents) == 1, [r["info"]["run_name"] for r in parents]  # registration adds no run of its own
    assert {_tags(c)["mlflow.parentRunId"] for c in children} == {parents[0]["info"]["run_id"]}
    names = {c["info"]["run_name"] for c in children}
    assert {"all_inputs/ridge", "all_inputs/tfidf_benchmark", "synopsis/ridge", "train_mean"} <= names

    keys = [{m["key"] for m in c["data"]["metrics"]} for c in children]
    assert all(k == keys[0] for k in keys), keys  # same names in every child: the UI lines them up
    assert SHARED_METRICS <= keys[0]
    ridge = next(c for c in children if c["info"]["run_name"] == "all_inputs/ridge")
    run_params = {p["key"]: p["value"] for p in ridge["data"]["params"]}
    assert run_params["model"] == "ridge" and run_params["input_set"] == "all_inputs"
    assert run_params["encoder"] == params.embed.text.model and run_params["hp.alpha"] == "1.0"
    tags = _tags(ridge)
    assert tags["git_commit"] and tags["split_kind"] and tags["data_hash"].startswith(("dvc:", "md5:"))
    assert _tags(experiment)["mlflow.experimentKind"] == "custom_model_development"  # not the GenAI overview


def test_every_child_has_the_prepared_data_as_input_per_split_and_main_children_a_registrable_model(logged):
    uri, _, params, _ = logged
    experiment = _api(uri, f"experiments/get-by-name?experiment_name={params.mlflow.experiment}")["experiment"]
    children = [r for r in _runs(uri, experiment["experiment_id"]) if "mlflow.parentRunId" in _tags(r)]
    for child in children:
        inputs = child["inputs"]["dataset_inputs"]
        contexts = {t["value"] for i in inputs for t in i["tags"] if t["key"] == "mlflow.data.context"}
        assert contexts == {"train", "val", "test"}, child["info"]["run_name"]
        digests = {i["dataset"]["digest"] for i in inputs}
        assert digests == {_tags(child)["data_hash"].split(":", 1)[1][:36]}
        # the main input set's models and the baselines log a registrable model; an ablation child does not
        # (mlflow.log_models: main), and says why
        name = child["info"]["run_name"]
        main = name.startswith(f"{params.train.inputs}/") or "/" not in name
        assert _tags(child)["model_logged"] == str(main).lower(), name
        assert ("model_not_logged" in _tags(child)) != main, name


def test_the_registered_version_links_to_the_primary_models_child_run(logged):
    uri, _, params, registered = logged
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version(params.registry.model_name, registered["version"])
    run = client.get_run(version.run_id)
    assert run.info.run_name == f"{params.train.inputs}/{params.train.model}"
    assert "mlflow.parentRunId" in run.data.tags and run.data.tags["registered_version"] == registered["version"]
    # any child can be registered: the baseline's logged model too, and it answers a pitch
    experiment = client.get_experiment_by_name(params.mlflow.experiment)
    (baseline,) = client.search_runs([experiment.experiment_id], "attributes.run_name = 'train_mean'")
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{baseline.info.run_id}/model")
    answer = model.predict(pd.DataFrame({"synopsis": ["A girl finds a dragon in the school band room."]}))
    assert answer["score"].iloc[0] == answer["baseline_score"].iloc[0]


def _browser() -> str | None:
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


def test_screenshots_show_the_runs_table_compare_view_and_champion(logged, tmp_path):
    if _browser() is None or importlib.util.find_spec("playwright") is None:
        pytest.skip("no headless Chromium (apt-get install chromium) or no playwright (pip install playwright)")
    uri, _, params, _ = logged
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        from ui_screenshots import screenshot_pages
    finally:
        sys.path.pop(0)
    shots = screenshot_pages(uri, tmp_path, experiment=params.mlflow.experiment,
                             model_name=params.registry.model_name)
    for name in shots:
        assert (tmp_path / name).stat().st_size > 20_000, name
    assert "all_inputs/ridge" in shots["mlflow_runs_table.png"] and "spearman" in shots["mlflow_runs_table.png"]
    assert "champion" in shots["mlflow_registered_model.png"]
