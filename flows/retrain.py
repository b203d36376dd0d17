"""Scheduled retraining: the pipeline flow with a fresh ingest, served as a Prefect deployment on a cron.

Each run re-reads the source (new anime, changed scores), then validates, retrains and evaluates; steps whose
inputs did not change are served from the step cache, and the registry decides whether the new model is
promoted. With the jikan source the re-read is its incremental refresh (ingest.jikan.refresh): airing and
recent anime and ids new since the last run are fetched again (their cached pages are older than
cache_ttl_days, which is below the weekly period), the rest comes from the cache.
Serve it (blocks; runs execute in subprocesses of this process, from the project root):
    python flows/retrain.py [--params params.yaml] [--cron "0 3 * * 1"]
or `anipop schedule --cron "0 3 * * 1"`. With a Prefect server (PREFECT_API_URL set) the deployment and its
runs show in the UI; without one, serving starts a temporary local server that lives as long as this process.
"""

from __future__ import annotations

import argparse

from pipeline import pipeline  # flows/ is on sys.path both as a script and under Prefect's entrypoint loader
from prefect import flow, get_run_logger

from anipop import orchestration as orch
from anipop.config import load_params


@flow(name="anipop-retrain")
def retrain(params_file: str = "params.yaml"):
    """Re-ingest, validate, retrain, evaluate, register; fails (with the reason) when the pipeline fails."""
    ingest = load_params(params_file).ingest
    if ingest.source == "jikan" and ingest.jikan.refresh != "incremental":
        get_run_logger().warning("ingest.jikan.refresh is %s: every expired page is fetched again (hours)", ingest.jikan.refresh)
    return pipeline(params_file=params_file, refresh_ingest=True, return_state=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the anipop retraining deployment on a cron schedule.")
    parser.add_argument("--params", default="params.yaml", help="path to params.yaml (default: %(default)s)")
    parser.add_argument("--cron", default=None, help="cron schedule (default: orchestration.schedule.cron)")
    args = parser.parse_args()
    orch.serve_retrain(retrain, args.params, load_params(args.params), cron=args.cron)


if __name__ == "__main__":
    main()
