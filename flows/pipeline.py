"""The anipop pipeline as a Prefect flow: ingest -> prepare -> validate -> embed -> train -> backtest
-> evaluate -> register.

Each task calls the same step function as its DVC stage (`anipop <step>`); the flow only wires them.
What the flow adds (all in anipop.orchestration): a step whose dvc.yaml inputs did not change is served
from the persisted cache under .prefect/, network steps retry with backoff, a failed validation fails the
run with the Data Docs path, and each run shows the metrics table and its MLflow run in the Prefect UI.
Tasks exchange small reports and paths on disk, never matrices.

Run once (an ephemeral Prefect server starts and stops with it; no server needed), from the project root:
    python flows/pipeline.py [--params params.yaml] [--refresh-ingest]
"""

from __future__ import annotations

import argparse
import os

from prefect import flow, task
from prefect.states import Failed

from anipop import orchestration as orch
from anipop.config import Params, load_params

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@task(name="ingest")
def ingest(params: Params) -> dict:
    from anipop.ingest import run_ingest

    return run_ingest(params)


@task(name="prepare")
def prepare(params: Params) -> dict:
    from anipop.prepare import run_prepare

    return run_prepare(params)


@task(name="validate")
def validate(params: Params) -> dict:
    from anipop.validate import run_validate

    return run_validate(params)


@task(name="embed")
def embed(params: Params) -> dict:
    from anipop.embed import run_embed

    return run_embed(params)


@task(name="train")
def train(params: Params) -> dict:
    from anipop.train import run_train

    return run_train(params)


@task(name="backtest")
def backtest(params: Params) -> dict:
    from anipop.backtest import run_backtest

    run_backtest(params)
    return {"reports_dir": str(params.paths.reports_dir)}


@task(name="evaluate")
def evaluate(params: Params) -> dict:
    from anipop.evaluate import run_evaluate

    return run_evaluate(params)


@task(name="register")
def register(params: Params, mlflow_run_id: str | None) -> dict:
    """The registry decides promotion; `mlflow_run_id` is the cache key: a run is registered once."""
    from anipop.registry import run_register

    return run_register(params)


@flow(name="anipop-embed-shards")
def embed_sharded(params: Params) -> dict:
    """Shards fill the shared per-item cache in parallel (on the configured task runner), then the embed
    step assembles the matrices from it."""
    from anipop.embed_shards import embed_shard, remove_shards, shard_options, write_shards

    shard_task = embed_shard.with_options(**shard_options(params))
    futures = [shard_task.submit(shard) for shard in write_shards(params, params.orchestration.embed_shards)]
    for future in futures:
        future.result()
    manifest = embed.with_options(**orch.step_options("embed", params))(params)
    remove_shards(params)
    return manifest


@flow(name="anipop-pipeline")
def pipeline(params_file: str = "params.yaml", refresh_ingest: bool = False) -> dict:
    """One pass of the pipeline with the params in `params_file`; `refresh_ingest` re-reads the source
    even when its inputs look unchanged (the retraining schedule sets it)."""
    from anipop.validate import ValidationFailed

    params = load_params(params_file)

    def step(task_, name: str, *args):
        return task_.with_options(**orch.step_options(name, params))(params, *args)

    with orch.step_logs_to_prefect():
        ingest.with_options(**orch.step_options("ingest", params, refresh=refresh_ingest))(params)
        step(prepare, "prepare")
        try:
            step(validate, "validate")
        except ValidationFailed as error:
            return Failed(message=orch.publish_validation_failure(error))
        if params.orchestration.embed_shards > 1:
            embed_sharded.with_options(task_runner=orch.task_runner(params.orchestration))(params)
        else:
            step(embed, "embed")
        trained = step(train, "train")
        step(backtest, "backtest")
        evaluation = step(evaluate, "evaluate")
        orch.publish_artifacts(params, evaluation)
        registered = step(register, "register", evaluation.get("mlflow_run_id"))
    return {"train": trained, "evaluation": evaluation, "registered": registered}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the anipop pipeline once as a Prefect flow.")
    parser.add_argument("--params", default="params.yaml", help="path to params.yaml (default: %(default)s)")
    parser.add_argument("--refresh-ingest", action="store_true", help="re-read the source even if unchanged")
    args = parser.parse_args()
    state = pipeline(params_file=args.params, refresh_ingest=args.refresh_ingest, return_state=True)
    if not state.is_completed():
        raise SystemExit(f"pipeline {state.name.lower()}: {state.message}")


if __name__ == "__main__":
    main()
