"""Scheduled retraining: the pipeline flow with a fresh ingest, served as a Prefect deployment on a cron.

Each run re-reads the source (new anime, changed scores: `dvc repro --force ingest`), then DVC reruns what the
new data makes stale, and the registry decides whether the new model is promoted. With the jikan source the
re-read is its incremental refresh (ingest.jikan.refresh): airing and recent anime and ids new since the last
run are fetched again (their cached pages are older than cache_ttl_days, which is below the weekly period), the
rest comes from the cache.
Serve it (blocks; runs execute in subprocesses of this process) from the project root:
    python flows/retrain.py [--project .] [--cron "0 3 * * 1"]
or `anipop schedule --cron "0 3 * * 1"`. It needs a Prefect server: start one with `prefect server start` and
set PREFECT_API_URL (see the README); the deployment and its runs then show in the UI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import pipeline  # flows/ is on sys.path both as a script and under Prefect's entrypoint loader
from prefect import flow, get_run_logger

from anipop import orchestration as orch


@flow(name="anipop-retrain")
def retrain(project_dir: str = "."):
    """Re-ingest, validate, retrain, evaluate, register; fails (with the reason) when the pipeline fails."""
    ingest = orch.project_params(Path(project_dir)).ingest
    if ingest.source == "jikan" and ingest.jikan.refresh != "incremental":
        get_run_logger().warning("ingest.jikan.refresh is %s: every expired page is fetched again (hours)", ingest.jikan.refresh)
    return pipeline(project_dir=project_dir, refresh_ingest=True, return_state=True)


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
