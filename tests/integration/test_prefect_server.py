"""Integration: a real Prefect server, the retraining deployment served from flows/retrain.py, one run
triggered through the API, as an operator would run it. Everything (server database, PREFECT_HOME, data,
MLflow store, step cache) lives in tmp; every process started here is stopped in the fixture's finally.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import REPO_ROOT, params_in
from fixtures_mal import learnable_rows, write_mal_csv
from fixtures_pipeline import dvc_project
from fixtures_servers import free_port, start, stop, tail, wait_until

pytestmark = pytest.mark.server

SERVER_START_TIMEOUT_S = 60
DEPLOYMENT = "anipop-retrain/weekly-retrain"


@pytest.fixture
def served_retrain(tmp_path):
    """(api url, params) once the server answers and the retraining deployment is registered."""
    csv = write_mal_csv(tmp_path / "source" / "anime.csv", learnable_rows(40))
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = params_in(tmp_path, ingest={"local_path": csv}, evaluate={"bootstrap_samples": 20},
                       train={"model": "ridge", "models": ("ridge",), "ablations": ()},
                       mlflow={"tracking_uri": mlflow_uri, "artifact_location": str(tmp_path / "mlruns")},
                       orchestration={"prefect_dir": tmp_path / ".prefect"})
    project = dvc_project(tmp_path, params)  # the deployment runs this project's DVC stages
    url = f"http://127.0.0.1:{free_port()}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": url,
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
           "MLFLOW_TRACKING_URI": mlflow_uri, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    started: list[subprocess.Popen] = []
    try:
        server_log = tmp_path / "server.log"
        started.append(start([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", url.split(":")[-1].removesuffix("/api")], server_log, env, cwd=REPO_ROOT))

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_until(healthy, SERVER_START_TIMEOUT_S):
            pytest.skip(f"prefect server did not start within {SERVER_START_TIMEOUT_S}s:\n{tail(server_log)}")

        serve_log = tmp_path / "serve.log"
        started.append(start([sys.executable, "flows/retrain.py", "--project", str(project),
                               "--cron", "0 3 * * 1"], serve_log, env, cwd=REPO_ROOT))

        def deployed() -> bool:
            try:  # a busy machine can make the server slow to answer: that is "not yet", not a failure
                return httpx.get(f"{url}/deployments/name/{DEPLOYMENT}", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(deployed, 60), f"deployment never registered:\n{tail(serve_log)}"
        yield url, params, serve_log
    finally:
        for process in reversed(started):
            stop(process)


def test_served_retraining_deployment_runs_through_the_api(served_retrain):
    from mlflow.tracking import MlflowClient
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url, params, serve_log = served_retrain
    with temporary_settings(updates={PREFECT_API_URL: url}):
        deployment = httpx.get(f"{url}/deployments/name/{DEPLOYMENT}", timeout=5).json()
        assert deployment["schedules"][0]["schedule"]["cron"] == "0 3 * * 1"
        flow_run = run_deployment(DEPLOYMENT, timeout=480, poll_interval=2)  # ten stages, each a dvc process

    assert flow_run.state.is_completed(), f"{flow_run.state}\n{tail(serve_log)}"
    assert (Path(params.paths.reports_dir) / "metrics.json").exists()
    uri = params.mlflow.tracking_uri  # registry_uri too: MLflow's global one may point at another test's store
    versions = MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions()
    assert versions, "the run completed but registered no model version"
