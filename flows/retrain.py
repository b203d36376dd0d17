"""Scheduled retraining: re-read the source, check drift against the champion, retrain when it is due.

Each run re-reads the source (new anime, changed scores: `dvc repro --force ingest`). When the raw data did not
change and nothing else is stale, the run says "no new data, no drift" and stops. Otherwise it prepares,
validates and embeds the new data, runs the drift check (`anipop drift`: the champion's training anime against
the anime new to it, and its live metrics on those already scored), decides under `retrain.trigger`, and when it
retrains, DVC reruns what the new data makes stale and the registry decides promotion. The decision, the drift
report and the registration are published on this flow run (the one the Prefect UI opens), and the drift
report is logged to the evaluation's MLflow run. With the jikan source the re-read is its incremental refresh
(ingest.jikan.refresh).
Serve it (blocks; runs execute in subprocesses of this process) from the project root:
    python flows/retrain.py [--project .] [--cron "0 3 * * 1"]
or `anipop schedule --cron "0 3 * * 1"`. It needs a Prefect server: start one with `prefect server start` and
set PREFECT_API_URL (see docs/retraining.md); the deployment and its runs then show in the UI.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipeline import run_stages  # flows/ is on sys.path both as a script and under Prefect's entrypoint loader
from prefect import flow, get_run_logger, task
from prefect.states import Failed

from anipop import orchestration as orch
from anipop.core.artifacts import ArtifactPaths
from anipop.core.utils import read_json

BEFORE_DRIFT = ("ingest", "prepare", "validate", "embed")  # the drift check reads the prepared data and its embeddings


@task(name="drift")
def drift_check(project: str) -> dict:
    """`anipop drift` in the project; its summary (reports/drift.json)."""
    from anipop.monitoring.drift import report_paths

    orch.run_step(Path(project), "drift", logger=get_run_logger())
    return read_json(report_paths(orch.project_params(Path(project)))[0])


@flow(name="anipop-retrain")
def retrain(project_dir: str = ".") -> dict:
    """Re-ingest; stop when nothing changed; else check drift, decide under retrain.trigger, retrain, register."""
    project = str(Path(project_dir).resolve())
    params = orch.project_params(Path(project))
    logger = get_run_logger()
    if params.ingest.source == "jikan" and params.ingest.jikan.refresh != "incremental":
        logger.warning("ingest.jikan.refresh is %s: every expired page is fetched again (hours)", params.ingest.jikan.refresh)
    before = orch.raw_data_version(Path(project), params)
    stages = orch.pipeline_stages(Path(project))
    seconds: dict[str, float] = {}
    try:
        ran = run_stages(project, ["ingest"], force=("ingest",), seconds=seconds)
        data_changed = before is None or orch.raw_data_version(Path(project), params) != before
        stale = orch.stale_stages(Path(project))
        if not data_changed and not stale:
            decision = orch.RetrainDecision(False, "no new data, no drift: nothing to retrain")
            logger.info("retrain: %s", decision.reason)
            orch.publish_retrain_summary(params, Path(project), decision, None, ran)
            return {"retrained": False, "reason": decision.reason, "ran": ran, "drift": None, "seconds": seconds}
        ran |= run_stages(project, [name for name in stages if name in BEFORE_DRIFT and name != "ingest"],
                          seconds=seconds)
        started = time.monotonic()
        drift = drift_check(project)
        seconds["drift"] = round(time.monotonic() - started, 1)
        decision = orch.retrain_decision(params.retrain.trigger, data_changed, stale, drift)
        logger.info("retrain: %s", decision.reason)
        if decision.retrain:
            ran |= run_stages(project, [name for name in stages if name not in BEFORE_DRIFT], seconds=seconds)
    except orch.StageFailed as error:
        if error.stage == "validate":
            return Failed(message=error.message)
        raise
    run_id = None
    if decision.retrain:
        run_id = orch.publish_artifacts(params, Path(project))
        if run_id:
            from anipop.monitoring.check import log_drift

            log_drift(params, run_id)
    orch.publish_retrain_summary(params, Path(project), decision, drift, ran)
    registration_file = ArtifactPaths.of(params.paths).registration
    registration = read_json(registration_file) if decision.retrain and registration_file.exists() else None
    return {"retrained": decision.retrain, "reason": decision.reason, "ran": ran, "drift": drift,
            "registration": registration, "mlflow_run_id": run_id, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the anipop retraining deployment on a cron schedule.")
    parser.add_argument("--project", default=".", help="the project folder: dvc.yaml, params.yaml (default: %(default)s)")
    parser.add_argument("--cron", default=None, help="cron schedule (default: orchestration.schedule.cron)")
    args = parser.parse_args()
    problem = orch.project_problem(Path(args.project)) or orch.prefect_server_problem()
    if problem:
        raise SystemExit(f"error: {problem}")
    orch.serve_retrain(retrain, Path(args.project), orch.project_params(Path(args.project)), cron=args.cron)


if __name__ == "__main__":
    main()
