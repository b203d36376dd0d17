"""The anipop pipeline as a Prefect flow: one task per DVC stage, in dvc.yaml's order.

DVC decides what is stale: each task runs `dvc repro --single-item <stage>`, which runs the stage's command
(`anipop <step>`) only when its deps, params or outs changed, and records it in dvc.lock. So a flow run and
`dvc repro` are interchangeable, and after either `dvc status` is clean. What the flow adds (anipop.orchestration):
retries of transient failures with backoff, the embedding shards on a task runner (Dask) before the embed stage
assembles them, a failed validation that fails the run naming the checks and the Data Docs, and the metrics
table and the MLflow run as artifacts in the Prefect UI.

Run once (an ephemeral Prefect server starts and stops with it; no server needed), from the project root:
    python flows/pipeline.py [--project .] [--refresh-ingest]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from anipop.prefect_settings import quiet_local_prefect, run_flow_or_exit

quiet_local_prefect()  # before Prefect is imported: it reads its settings once, at import

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.states import Completed, Failed, State  # noqa: E402

from anipop import orchestration as orch  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@task(name="stage")
def stage(project: str, name: str, force: bool = False) -> dict | State:
    """One DVC stage; returns whether DVC ran it or found it up to date. A stage DVC found up to date ends in a
    Completed state named "Skipped", so the UI tells it from a stage that ran (both "Completed" before)."""
    started = time.monotonic()
    run = orch.run_stage(Path(project), name, force=force, logger=get_run_logger())
    result = {"stage": run.stage, "ran": run.ran, "seconds": round(time.monotonic() - started, 1)}
    if run.ran:
        return result
    return Completed(name="Skipped", message=f"{name}: up to date, DVC did not run it", data=result)


def _value(outcome: dict | State) -> dict:
    """A stage task's result, whether it returned its dict or a Skipped state holding it."""
    return outcome.result() if isinstance(outcome, State) else outcome


@flow(name="anipop-embed-shards")
def embed_shards(project: str) -> None:
    """Shards fill the shared per-item embedding cache in parallel on the configured task runner; the embed
    stage then finds every vector cached and only assembles the matrices."""
    from anipop.embedding.shards import embed_shard, remove_shards, write_shards

    params = orch.project_params(Path(project))
    futures = [embed_shard.submit(shard) for shard in write_shards(params, params.orchestration.embed_shards)]
    for future in futures:
        future.result()
    remove_shards(params)


def run_stages(project: str, names: list[str], force: tuple[str, ...] = (),
               seconds: dict[str, float] | None = None) -> dict[str, bool]:
    """Run `names` (dvc.yaml stages, in that order) as tasks of the calling flow; stage -> whether DVC ran it.
    `seconds`, when given, receives each stage's wall time.

    A failed validation raises orch.StageFailed with the checks' message, after publishing them as an artifact.
    """
    params = orch.project_params(Path(project))
    retrying = stage.with_options(**orch.retry_options(params.orchestration))
    ran: dict[str, bool] = {}
    with orch.step_logs_to_prefect():
        for name in names:
            if name == "embed" and params.orchestration.embed_shards > 1 and orch.stage_is_stale(Path(project), name):
                embed_shards.with_options(task_runner=orch.task_runner(params.orchestration))(project)
            try:
                result = _value(retrying.with_options(task_run_name=name)(project, name, force=name in force))
            except orch.StageFailed as error:
                if name == "validate":
                    orch.publish_validation_failure(error)
                raise
            ran[name] = result["ran"]
            if seconds is not None:
                seconds[name] = result["seconds"]
    return ran


@flow(name="anipop-pipeline")
def pipeline(project_dir: str = ".", refresh_ingest: bool = False) -> dict:
    """One pass of the DVC pipeline of `project_dir`; `refresh_ingest` re-reads the source even when its
    inputs look unchanged (an online source changes without a local trace)."""
    project = str(Path(project_dir).resolve())
    try:
        ran = run_stages(project, orch.pipeline_stages(Path(project)), force=("ingest",) if refresh_ingest else ())
    except orch.StageFailed as error:
        if error.stage == "validate":
            return Failed(message=error.message)
        raise
    run_id = orch.publish_artifacts(orch.project_params(Path(project)), Path(project))
    return {"ran": ran, "mlflow_run_id": run_id}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the anipop pipeline once as a Prefect flow.")
    parser.add_argument("--project", default=".", help="the project folder: dvc.yaml, params.yaml (default: %(default)s)")
    parser.add_argument("--refresh-ingest", action="store_true", help="re-read the source even if unchanged")
    args = parser.parse_args()
    problem = orch.project_problem(Path(args.project))
    if problem:
        raise SystemExit(f"error: {problem}")
    run_flow_or_exit("pipeline", lambda: pipeline(project_dir=args.project, refresh_ingest=args.refresh_ingest, return_state=True))


if __name__ == "__main__":
    main()
