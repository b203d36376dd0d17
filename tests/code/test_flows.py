"""The Prefect flows on tiny data: wiring, step cache, failed validation, artifacts, embedding shards on Dask.

Flows run under prefect_test_harness (a temporary server and database); data, MLflow store and the step
cache all live in tmp_path. The registry is a recording stand-in here: these tests check how the flow calls
it (once per new evaluation, never after a failed validation), not what it decides.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.testing.utilities import prefect_test_harness

from anipop import orchestration as orch
from anipop.config import Params
from anipop.embed_shards import split_ids
from conftest import REPO_ROOT, params_in
from fixtures_mal import learnable_rows, write_mal_csv

sys.path.insert(0, str(REPO_ROOT / "flows"))  # flows/ is not a package: the scripts import each other by name
import pipeline as pipeline_flow  # noqa: E402

DVC_FILE = REPO_ROOT / "dvc.yaml"
FAST_TRAIN = {"model": "ridge", "models": ("ridge",), "ablations": ()}


@pytest.fixture(scope="module")
def harness():
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry calls from the test server
        with prefect_test_harness(server_startup_timeout=60):
            yield


@pytest.fixture(autouse=True)
def from_project_root(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # flows, like `anipop` and `dvc repro`, run from the project root


@pytest.fixture
def registry(monkeypatch) -> list:
    """A stand-in anipop.registry that records the evaluation run each call registers."""
    calls: list = []
    fake = types.ModuleType("anipop.registry")

    def run_register(params: Params) -> dict:
        reports = Path(params.paths.reports_dir)
        calls.append(reports)
        result = {"version": str(len(calls)), "promoted": len(calls) == 1}
        (reports / "registration.json").write_text(str(result))  # the outs dvc.yaml declares for register
        (reports / "model_card.md").write_text("stand-in")
        return result

    fake.run_register = run_register
    monkeypatch.setitem(sys.modules, "anipop.registry", fake)
    return calls


def tiny_params(tmp_path: Path, rows: list[dict] | None = None, **sections) -> Params:
    csv = write_mal_csv(tmp_path / "source" / "anime.csv", rows or learnable_rows(40))
    sections = {"train": FAST_TRAIN, "evaluate": {"bootstrap_samples": 20}, **sections}
    return params_in(
        tmp_path, ingest={"local_path": csv},
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifact_location": str(tmp_path / "mlruns")},
        orchestration={"prefect_dir": tmp_path / ".prefect", **sections.pop("orchestration", {})}, **sections)


def write_params(params: Params, path: Path) -> str:
    path.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return str(path)


def task_states(flow_run_id) -> list[tuple[str, str]]:
    """(task name, final state name) of each task run of one flow run: Completed, Cached, Failed, ..."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted((run.name.rsplit("-", 1)[0], run.state.name) for run in runs)


# --- the step cache: dvc.yaml's view of each step ------------------------------------------------------

def test_read_stages_resolves_params_templates_against_the_project(tmp_path):
    params = tiny_params(tmp_path)
    stages = orch.read_stages(params, DVC_FILE)
    assert {"ingest", "prepare", "validate", "embed", "train", "evaluate"} <= set(stages)
    assert params.ingest.local_path in stages["ingest"].deps
    assert REPO_ROOT / "src/anipop/prepare.py" in stages["prepare"].deps
    assert Path(params.paths.validation_dir) / "summary.json" in stages["validate"].outs
    assert "train" in stages["train"].params and "seed" in stages["train"].params


def test_step_key_follows_the_steps_own_params_and_data_only(tmp_path):
    params = tiny_params(tmp_path)
    Path(params.paths.raw_dir).mkdir(parents=True)
    (Path(params.paths.raw_dir) / "anime.parquet").write_bytes(b"v1")
    stages = orch.read_stages(params, DVC_FILE)
    keys = {name: orch.step_key(spec, params) for name, spec in stages.items()}
    retuned = params.model_copy(update={"train": params.train.model_copy(update={"ridge_alpha": 1.5})})
    assert orch.step_key(stages["train"], retuned) != keys["train"]
    assert orch.step_key(stages["prepare"], retuned) == keys["prepare"]
    (Path(params.paths.raw_dir) / "anime.parquet").write_bytes(b"v2")
    assert orch.step_key(stages["prepare"], params) != keys["prepare"]
    assert orch.step_key(stages["ingest"], params) == keys["ingest"]


def test_step_options_cache_retry_and_refresh(tmp_path):
    params = tiny_params(tmp_path, orchestration={"retries": 4, "retry_delays_s": (1.0, 5.0)})
    local_ingest = orch.step_options("ingest", params, dvc_file=DVC_FILE)
    assert local_ingest["cache_policy"] is not NO_CACHE and "retries" not in local_ingest
    assert local_ingest["refresh_cache"] is True  # its outs do not exist yet
    assert local_ingest["result_storage"] == (tmp_path / ".prefect" / "results").resolve()
    online = params.model_copy(update={"ingest": params.ingest.model_copy(update={"source": "jikan"})})
    jikan_ingest = orch.step_options("ingest", online, dvc_file=DVC_FILE)
    assert jikan_ingest["cache_policy"] is NO_CACHE and jikan_ingest["retries"] == 4
    evaluate = orch.step_options("evaluate", params, dvc_file=DVC_FILE)
    assert evaluate["retry_delay_seconds"] == [1.0, 5.0, 5.0, 5.0]
    assert "retries" not in orch.step_options("train", params, dvc_file=DVC_FILE)


def test_only_transient_errors_are_retried():
    assert orch.is_transient(ConnectionError("reset by peer")) and orch.is_transient(TimeoutError())
    assert not orch.is_transient(ValueError("bad param")) and not orch.is_transient(FileNotFoundError("x"))


def test_task_runner_follows_params(tmp_path):
    cfg = tiny_params(tmp_path).orchestration
    runner = orch.task_runner(cfg.model_copy(update={"max_workers": 3}))
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3
    dask = orch.task_runner(cfg.model_copy(update={"task_runner": "dask", "max_workers": 2, "dask_processes": False}))
    assert type(dask).__name__ == "DaskTaskRunner"
    assert dask.cluster_kwargs["n_workers"] == 2 and dask.cluster_kwargs["processes"] is False


def test_schedule_command_serves_flows_retrain_and_rejects_a_bad_cron(tmp_path):
    from typer.testing import CliRunner

    from anipop.cli import app

    assert orch.load_retrain_flow(REPO_ROOT).name == "anipop-retrain"
    params_file = write_params(tiny_params(tmp_path), tmp_path / "params.yaml")
    result = CliRunner().invoke(app, ["schedule", "--params", params_file, "--cron", "0 3 * *"])
    assert result.exit_code == 1 and "Invalid cron" in result.output


def test_split_ids_covers_every_id_once_in_contiguous_slices():
    parts = split_ids([9, 3, 5, 1, 7], 2)
    assert parts == [[1, 3, 5], [7, 9]]
    assert split_ids([4, 2], 5) == [[2], [4]]  # never an empty shard


# --- flows under a temporary Prefect server -------------------------------------------------------------

def test_pipeline_runs_then_reruns_only_what_changed(harness, tmp_path, registry):
    params = tiny_params(tmp_path)
    params_file = write_params(params, tmp_path / "params.yaml")

    first = pipeline_flow.pipeline(params_file=params_file, return_state=True)
    assert first.is_completed(), first.message
    summary = first.result()
    run_id = summary["evaluation"]["mlflow_run_id"]
    assert summary["registered"] == {"version": "1", "promoted": True} and len(registry) == 1
    assert {state for _, state in task_states(first.state_details.flow_run_id)} == {"Completed"}
    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[first.state_details.flow_run_id])))}
    assert "| ridge |" in artifacts["anipop-metrics"].data
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
            any_=[first.state_details.flow_run_id])))
    assert any(log.name == "anipop.ingest" for log in logs)  # step logs reach the Prefect UI
    assert artifacts["anipop-mlflow-run"].data.endswith(
        f"http://127.0.0.1:5000/#/experiments/1/runs/{run_id}?workflowType=machine_learning)")  # the parent run

    second = pipeline_flow.pipeline(params_file=params_file, return_state=True)
    assert second.is_completed(), second.message
    assert {state for _, state in task_states(second.state_details.flow_run_id)} == {"Cached"}, \
        task_states(second.state_details.flow_run_id)
    assert second.result()["evaluation"]["mlflow_run_id"] == run_id and len(registry) == 1

    retuned = params.model_copy(update={"train": params.train.model_copy(update={"ridge_alpha": 0.5})})
    third = pipeline_flow.pipeline(params_file=write_params(retuned, tmp_path / "params.yaml"), return_state=True)
    states = dict(task_states(third.state_details.flow_run_id))
    assert {states[s] for s in ("ingest", "prepare", "validate", "embed")} == {"Cached"}
    assert {states[s] for s in ("train", "evaluate", "register")} == {"Completed"}
    assert third.result()["evaluation"]["mlflow_run_id"] != run_id and len(registry) == 2


def test_failed_validation_fails_the_flow_with_data_docs_and_registers_nothing(harness, tmp_path, registry,
                                                                             monkeypatch):
    import anipop.prepare
    from anipop.schema import PREPARED_ANIME, read_table, write_table

    real_prepare = anipop.prepare.run_prepare

    def prepare_with_a_bug(params: Params) -> dict:
        """The real step, then an out-of-range score in its output: what a buggy prepare would hand on."""
        report = real_prepare(params)
        table = Path(params.paths.prepared_dir) / "anime.parquet"
        anime = read_table(PREPARED_ANIME, table)
        anime.loc[anime.index[0], "score"] = 11.0
        write_table(PREPARED_ANIME, anime, table)
        return report

    monkeypatch.setattr(anipop.prepare, "run_prepare", prepare_with_a_bug)
    params = tiny_params(tmp_path, rows=learnable_rows(30))

    state = pipeline_flow.pipeline(params_file=write_params(params, tmp_path / "params.yaml"), return_state=True)

    assert state.is_failed()
    assert state.message.startswith("validation failed:") and "prepared_anime" in state.message
    assert f"Data Docs: {Path(params.paths.validation_dir) / 'data_docs' / 'index.html'}" in state.message
    assert (Path(params.paths.validation_dir) / "data_docs" / "index.html").exists()
    assert registry == [] and not Path(params.paths.models_dir).exists()


def test_embedding_shards_on_a_local_dask_cluster(harness, tmp_path):
    from distributed.core import Status
    from distributed.scheduler import Scheduler

    from anipop.embed import load_embeddings, run_embed
    from anipop.ingest import run_ingest
    from anipop.prepare import run_prepare
    from anipop.validate import run_validate

    params = tiny_params(tmp_path, rows=learnable_rows(20), orchestration={
        "task_runner": "dask", "embed_shards": 2, "max_workers": 2, "dask_processes": False})
    for step in (run_ingest, run_prepare, run_validate):
        step(params)

    runner = orch.task_runner(params.orchestration)
    state = pipeline_flow.embed_sharded.with_options(task_runner=runner)(params, return_state=True)

    assert state.is_completed(), state.message
    assert task_states(state.state_details.flow_run_id) == [  # two shards, then the assembly from cache
        ("embed", "Completed"), ("embed-shard", "Completed"), ("embed-shard", "Completed")]
    assert state.result()["kinds"]["synopsis"]["embedded"] == 0  # the shards filled the cache for it
    ids, matrix = load_embeddings(params.paths.embeddings_dir, "synopsis")
    assert len(ids) == 20 and not (tmp_path / ".prefect" / "embed-shards").exists()
    unsharded = params.model_copy(update={"paths": params.paths.model_copy(update={
        "embeddings_dir": tmp_path / "plain", "embedding_cache_dir": tmp_path / "plain-cache"})})
    run_embed(unsharded)
    plain_ids, plain = load_embeddings(tmp_path / "plain", "synopsis")
    assert plain_ids == ids and np.allclose(plain, matrix, atol=1e-5)
    assert all(scheduler.status == Status.closed for scheduler in Scheduler._instances)
