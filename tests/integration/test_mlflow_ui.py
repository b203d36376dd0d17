"""The MLflow UI can compare models: checked over REST on a real tracking server, then (when a browser is
installed) in headless Chromium against `mlflow ui`.

A small real pipeline (ingest -> register) logs to a `mlflow server` on 127.0.0.1; the REST answers must
show one parent run with one child per (input set, model), baseline included, all with the same metric
keys, the prepared data as a dataset input per split, and the registered version pointing at the primary
model's child run.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from fixtures_pipeline import pipeline_params, run_pipeline
from fixtures_servers import free_port, start, stop, tracking_server_env, wait_until_up

from anipop.core.artifacts import ArtifactPaths
from anipop.core.utils import read_json

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_METRICS = {"mse", "mae", "r2", "pearson", "spearman", "kendall", "rmse_1_10",
                  "spearman_ci_low", "spearman_ci_high", "mse_ci_low", "mse_ci_high"}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A pipeline run (ridge, the TF-IDF benchmark, both baselines, the synopsis ablation, with the CV
    backtest) logged to a real server."""
    tmp = tmp_path_factory.mktemp("mlflow-ui")
    port, log = free_port(), tmp / "server.log"
    store = f"sqlite:///{tmp / 'server.db'}"
    process = start([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
                     "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1",
                     "--port", str(port), "--workers", "1"], log, tracking_server_env())
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{uri}/health", process, log, timeout_s=300)
        params = pipeline_params(tmp / "work", tracking_uri=uri)
        params = params.model_copy(update={"train": params.train.model_copy(
            update={"models": ("ridge", "tfidf_benchmark"), "ablations": ("synopsis",)})})
        params = params.model_copy(update={"evaluate": params.evaluate.model_copy(
            update={"cv_folds": 3, "temporal": params.evaluate.temporal.model_copy(update={"enabled": False})})})
        registered = run_pipeline(params, backtest=True)
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

    # the test split's names in every child: the UI lines them up (CV figures only where they were measured)
    keys = [{m["key"] for m in c["data"]["metrics"] if not m["key"].startswith(("cv_", "rolling_"))}
            for c in children]
    assert all(k == keys[0] for k in keys), keys
    assert SHARED_METRICS <= keys[0]
    ridge = next(c for c in children if c["info"]["run_name"] == "all_inputs/ridge")
    run_params = {p["key"]: p["value"] for p in ridge["data"]["params"]}
    assert run_params["model"] == "ridge" and run_params["input_set"] == "all_inputs"
    assert run_params["encoder"] == params.embed.text.model and run_params["hp.alpha"] == "1.0"
    tags = _tags(ridge)
    assert tags["git_commit"] and tags["split_kind"] and tags["data_hash"].startswith(("dvc:", "md5:"))
    assert _tags(experiment)["mlflow.experimentKind"] == "custom_model_development"  # not the GenAI overview


def test_a_childs_cv_figures_are_its_own_input_set_and_model_or_absent(logged):
    """CV was measured on the main input set only: an ablation child shows none, never the full model's."""
    uri, _, params, _ = logged
    cv = read_json(ArtifactPaths.of(params.paths).cv_details)["models"]
    experiment = _api(uri, f"experiments/get-by-name?experiment_name={params.mlflow.experiment}")["experiment"]
    children = [r for r in _runs(uri, experiment["experiment_id"]) if "mlflow.parentRunId" in _tags(r)]
    checked = 0
    for child in children:
        name, metrics = child["info"]["run_name"], {m["key"]: m["value"] for m in child["data"]["metrics"]}
        logged_cv = {key: value for key, value in metrics.items() if key.startswith("cv_")}
        input_set, _, model = name.rpartition("/")
        if input_set in ("", params.train.inputs):
            expected = {f"cv_{metric}_{stat}": value for metric, stats in cv[model].items()
                        for stat, value in stats.items()}
            assert logged_cv == pytest.approx(expected), name
            checked += 1
        else:
            assert logged_cv == {}, name
    assert checked == 4  # ridge, tfidf_benchmark, train_mean, length_only


def test_the_default_view_opens_on_the_best_model_then_the_baselines_and_the_parent_ranks_them(logged):
    """Newest first (the UI's default order) lists the main models best to worst on CV, then both baselines,
    then the ablations; the parent's description is the ranked table with a link that filters and sorts."""
    uri, _, params, _ = logged
    cv = read_json(ArtifactPaths.of(params.paths).cv_details)["models"]
    experiment = _api(uri, f"experiments/get-by-name?experiment_name={params.mlflow.experiment}")["experiment"]
    runs = _api(uri, "runs/search", experiment_ids=[experiment["experiment_id"]], max_results=1000,
                order_by=["attributes.start_time DESC"])["runs"]
    parent = next(r for r in runs if "mlflow.parentRunId" not in _tags(r))
    names = [r["info"]["run_name"] for r in runs if "mlflow.parentRunId" in _tags(r)]

    def cv_of(name: str) -> float:
        return cv[name.rpartition("/")[2]]["spearman"]["mean"]

    def best_first(found: list[str]) -> bool:  # ties may come in either order
        return all(cv_of(a) >= cv_of(b) for a, b in zip(found, found[1:]))

    main, baselines = names[:2], names[2:4]
    assert set(main) == {"all_inputs/ridge", "all_inputs/tfidf_benchmark"} and best_first(main), names
    assert set(baselines) == {"length_only", "train_mean"} and best_first(baselines), names
    ranked = [r["info"]["run_name"] for r in sorted(
        (r for r in runs if "anipop.rank" in _tags(r)), key=lambda r: int(_tags(r)["anipop.rank"]))]
    assert set(ranked) == {*main, *baselines} and best_first(ranked), ranked
    for run in runs:
        name, tags = run["info"]["run_name"], _tags(run)
        if name in ranked:
            assert tags["anipop.headline"] == "true" and tags["anipop.rank"] == str(ranked.index(name) + 1), name
            assert tags["mlflow.note.content"].startswith(f"Rank {ranked.index(name) + 1} of 4 on CV Spearman"), name
        elif "mlflow.parentRunId" in tags:
            assert tags["anipop.headline"] == "false" and "anipop.rank" not in tags, name
    board = _tags(parent)["mlflow.note.content"]
    table_rows = [line for line in board.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[1].split(" ")[0].strip("*") for row in table_rows] == ranked, board
    # the link's filter, run through the REST search, returns exactly the ranked runs
    from urllib.parse import parse_qs, unquote, urlsplit

    link = board.split("](", 1)[1].split(")", 1)[0]
    query = parse_qs(urlsplit(link).fragment.split("?", 1)[1])
    found = _api(uri, "runs/search", experiment_ids=[experiment["experiment_id"]], max_results=100,
                 filter=unquote(query["searchFilter"][0]),
                 order_by=[f"{query['orderByKey'][0]} DESC"])["runs"]
    found_names = [r["info"]["run_name"] for r in found]
    assert set(found_names) == set(ranked) and best_first(found_names), found_names
    artifacts = _api(uri, f"artifacts/list?run_id={parent['info']['run_id']}")["files"]
    assert "leaderboard.md" in {f["path"] for f in artifacts}


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
    first_screen = shots["mlflow_runs_table.png"]
    for name in ("all_inputs/ridge", "all_inputs/tfidf_benchmark", "train_mean", "length_only", "cv_spearman_mean"):
        assert name in first_screen, name
    assert "synopsis/ridge" not in first_screen  # the ablations are not in the ranked view
    assert "Which model is best" in shots["mlflow_pipeline_run.png"]
    assert "champion" in shots["mlflow_registered_model.png"]
