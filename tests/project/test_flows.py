"""The Prefect flows on tiny data: DVC stages as tasks, reruns decided by DVC, failed validation, retries,
artifacts, embedding shards on Dask.

Flows run under prefect_test_harness (a temporary server and database) on a tmp copy of the project (dvc.yaml,
the code it lists as deps, a params.yaml on a tiny CSV, git + DVC initialised), like the e2e test: the flow runs
the real stages there, with an MLflow store in that copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT, params_in
from fixtures_mal import learnable_rows, write_mal_csv
from fixtures_pipeline import dvc_project, write_params
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
from anipop.core.config import Params
from anipop.embedding.shards import split_ids
from anipop.steps import call_step

sys.path.insert(0, str(REPO_ROOT / "flows"))  # flows/ is not a package: the scripts import each other by name
import pipeline as pipeline_flow  # noqa: E402
import retrain as retrain_flow  # noqa: E402

FAST_TRAIN = {"model": "ridge", "models": ("ridge",), "ablations": ()}


@pytest.fixture(scope="module")
def harness():
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry calls from the test server
        with prefect_test_harness(server_startup_timeout=180):
            yield


def tiny_params(tmp_path: Path, rows: list[dict] | None = None, **sections) -> Params:
    csv = write_mal_csv(tmp_path / "source" / "anime.csv", rows or learnable_rows(40))
    sections = {"train": FAST_TRAIN, "evaluate": {"bootstrap_samples": 20}, **sections}
    return params_in(
        tmp_path, ingest={"local_path": csv},
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifact_location": str(tmp_path / "mlruns")},
        orchestration={"prefect_dir": tmp_path / ".prefect", **sections.pop("orchestration", {})}, **sections)


def dvc_status(project: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=project, capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    return result.stdout.strip()


def task_states(flow_run_id) -> list[tuple[str, str]]:
    """(task name, final state name) of each task run of one flow run: Completed, Failed, ..."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted((run.name.rsplit("-", 1)[0] if run.name.startswith("embed-shard") else run.name, run.state.name)
                  for run in runs)


# --- DVC stages as tasks ---------------------------------------------------------------------------------

def test_the_flow_runs_dvc_yamls_stages_in_its_order():
    stages = orch.pipeline_stages(REPO_ROOT)
    assert stages[:4] == ["ingest", "prepare", "validate", "embed"] and set(stages) >= {"train", "register"}
    assert stages.index("train") < stages.index("evaluate") < stages.index("register")
    assert stages.index("backtest") < stages.index("evaluate")


def test_a_stage_failure_names_the_steps_message_and_is_retried_only_when_transient():
    lines = ["Running stage 'evaluate':", "> anipop evaluate", "error: MLflow tracking store http://***@h: timed out "
             "(transient: worth a retry)", "ERROR: failed to reproduce 'evaluate': failed to run: anipop evaluate, "
             "exited with 75"]
    failure = orch._failure("evaluate", lines)
    assert failure.transient and failure.message.startswith("error: MLflow tracking store")
    permanent = orch._failure("prepare", ["error: anime.csv row 3, field score: not a score",
                                          "ERROR: failed to reproduce 'prepare': ... exited with 1"])
    assert not permanent.transient and "row 3" in str(permanent)
    options = orch.retry_options(tiny_params(Path("/tmp")).orchestration.model_copy(
        update={"retries": 4, "retry_delays_s": (1.0, 5.0)}))
    assert options["retries"] == 4 and options["retry_delay_seconds"] == [1.0, 5.0, 5.0, 5.0]


def test_only_network_failures_count_as_transient():
    import httpx

    from anipop.core.utils import is_transient

    assert is_transient(ConnectionError("reset by peer")) and is_transient(TimeoutError())
    assert is_transient(httpx.ConnectError("refused"))
    assert not is_transient(ValueError("bad param")) and not is_transient(FileNotFoundError("x"))


def test_task_runner_follows_params(tmp_path):
    cfg = tiny_params(tmp_path).orchestration
    runner = orch.task_runner(cfg.model_copy(update={"max_workers": 3}))
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3
    dask = orch.task_runner(cfg.model_copy(update={"task_runner": "dask", "max_workers": 2, "dask_processes": False}))
    assert type(dask).__name__ == "DaskTaskRunner"
    assert dask.cluster_kwargs["n_workers"] == 2 and dask.cluster_kwargs["processes"] is False


def test_schedule_command_loads_flows_retrain_and_needs_a_prefect_server(tmp_path):
    from typer.testing import CliRunner

    from anipop.cli import app

    assert orch.load_retrain_flow(REPO_ROOT).name == "anipop-retrain"
    params_file = write_params(tiny_params(tmp_path), tmp_path / "params.yaml")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("PREFECT_API_URL", raising=False)
        result = CliRunner().invoke(app, ["schedule", "--params", params_file])
    assert result.exit_code == 2 and "needs a Prefect server" in result.output and "Traceback" not in result.output


def test_split_ids_covers_every_id_once_in_contiguous_slices():
    parts = split_ids([9, 3, 5, 1, 7], 2)
    assert parts == [[1, 3, 5], [7, 9]]
    assert split_ids([4, 2], 5) == [[2], [4]]  # never an empty shard


# --- flows under a temporary Prefect server -------------------------------------------------------------

def test_pipeline_runs_dvc_stages_then_dvc_finds_nothing_to_do(harness, tmp_path):
    params = tiny_params(tmp_path)
    project = dvc_project(tmp_path, params)

    first = pipeline_flow.pipeline(project_dir=str(project), return_state=True)
    assert first.is_completed(), first.message
    summary = first.result()
    assert all(summary["ran"].values()) and set(summary["ran"]) >= {"ingest", "validate", "register"}
    assert dvc_status(project) == "Data and pipelines are up to date."  # the flow and DVC agree
    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[first.state_details.flow_run_id])))}
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
            any_=[first.state_details.flow_run_id])))
    assert "| ridge |" in artifacts["anipop-metrics"].data
    assert artifacts["anipop-mlflow-run"].data.endswith(
        f"/runs/{summary['mlflow_run_id']}?workflowType=machine_learning)")
    assert any("Running stage 'prepare'" in log.message for log in logs)  # stage output reaches the Prefect UI

    second = pipeline_flow.pipeline(project_dir=str(project), return_state=True)
    assert second.is_completed(), second.message
    assert not any(second.result()["ran"].values()) and second.result()["mlflow_run_id"] == summary["mlflow_run_id"]
    # in the UI a stage DVC found up to date is "Skipped", not "Completed" like one that ran
    assert {state for _, state in task_states(second.state_details.flow_run_id)} == {"Skipped"}
    assert {state for _, state in task_states(first.state_details.flow_run_id)} == {"Completed"}

    # a changed evaluate param reruns only the stages that read it, then register: no retraining
    dvc_project_params = yaml.safe_load((project / "params.yaml").read_text())
    dvc_project_params["evaluate"]["bootstrap_samples"] = 30
    (project / "params.yaml").write_text(yaml.safe_dump(dvc_project_params, sort_keys=False))
    third = pipeline_flow.pipeline(project_dir=str(project), return_state=True)
    ran = third.result()["ran"]
    assert not any(ran[s] for s in ("ingest", "prepare", "validate", "embed", "train"))
    assert all(ran[s] for s in ("backtest", "evaluate", "register"))  # backtest reads the evaluate section too
    assert dvc_status(project) == "Data and pipelines are up to date."

    # the scheduled retraining on unchanged data: it re-reads the source, finds nothing new and nothing stale,
    # says so on its own run, and registers nothing
    from mlflow import MlflowClient

    store = MlflowClient(tracking_uri=params.mlflow.tracking_uri, registry_uri=params.mlflow.tracking_uri)
    versions = len(store.search_model_versions("name='anipop'"))
    quiet = retrain_flow.retrain(project_dir=str(project), return_state=True)
    assert quiet.is_completed(), quiet.message
    outcome = quiet.result()
    assert not outcome["retrained"] and outcome["reason"] == "no new data, no drift: nothing to retrain"
    assert list(outcome["ran"]) == ["ingest"]
    with get_client(sync_client=True) as client:
        said = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[quiet.state_details.flow_run_id])))}
    assert "## Retraining: not retrained" in said["anipop-retrain"].data and "no new data, no drift" in said["anipop-retrain"].data
    assert len(store.search_model_versions("name='anipop'")) == versions


def test_failed_validation_fails_the_flow_with_data_docs_and_registers_nothing(harness, tmp_path):
    """A buggy prepare (an out-of-range score appended to its output) must stop the run at validate."""
    bug = (f"{sys.executable} -c \"import pandas as p; f='data/prepared/anime.parquet'; t=p.read_parquet(f); "
           f"t.loc[t.index[0], 'score']=11.0; t.to_parquet(f)\"")
    project = dvc_project(tmp_path, tiny_params(tmp_path, rows=learnable_rows(30)), prepare_suffix=bug)

    state = pipeline_flow.pipeline(project_dir=str(project), return_state=True)

    assert state.is_failed()
    assert state.message.startswith("validation failed:") and "prepared_anime" in state.message
    assert "Data Docs: " in state.message and (project / "data/validation/data_docs/index.html").exists()
    assert not (project / "models").exists() and not (project / "reports" / "registration.json").exists()


def test_embedding_shards_on_a_local_dask_cluster(harness, tmp_path):
    from distributed.core import Status
    from distributed.scheduler import Scheduler

    from anipop.core.artifacts import load_embeddings
    from anipop.data.prepare import run_prepare
    from anipop.data.validate import run_validate
    from anipop.embedding.embed import run_embed
    from anipop.sources.ingest import run_ingest

    params = tiny_params(tmp_path, rows=learnable_rows(20), orchestration={
        "task_runner": "dask", "embed_shards": 2, "max_workers": 2, "dask_processes": False})
    for step in (run_ingest, run_prepare, run_validate):
        call_step(step, params)

    runner = orch.task_runner(params.orchestration)
    write_params(params, tmp_path / "params.yaml")
    state = pipeline_flow.embed_shards.with_options(task_runner=runner)(str(tmp_path), return_state=True)

    assert state.is_completed(), state.message
    assert task_states(state.state_details.flow_run_id) == [("embed-shard", "Completed"), ("embed-shard", "Completed")]
    assert call_step(run_embed, params)["kinds"]["synopsis"]["embedded"] == 0  # the shards filled the cache for the stage
    ids, matrix = load_embeddings(params.paths.embeddings_dir, "synopsis")
    assert len(ids) == 20 and not (tmp_path / ".prefect" / "embed-shards").exists()
    unsharded = params.model_copy(update={"paths": params.paths.model_copy(update={
        "embeddings_dir": tmp_path / "plain", "embedding_cache_dir": tmp_path / "plain-cache"})})
    call_step(run_embed, unsharded)
    plain_ids, plain = load_embeddings(tmp_path / "plain", "synopsis")
    assert plain_ids == ids and np.allclose(plain, matrix, atol=1e-5)
    assert all(scheduler.status == Status.closed for scheduler in Scheduler._instances)
