"""Real MLflow servers on 127.0.0.1: a tracking server that train + register run against, then
`mlflow models serve` of the champion answering REST requests with a score, or a 400 naming the field.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from fixtures_pipeline import PITCH, pipeline_params, run_pipeline
from fixtures_servers import free_port, start, stop, tail, wait_until

MLFLOW = [sys.executable, "-m", "mlflow"]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log)}")
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_until(answers, timeout_s):
        raise RuntimeError(f"{url} not up after {timeout_s}s:\n{tail(log)}")


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracking-server")
    port = free_port()
    log = tmp / "server.log"
    process = start([*MLFLOW, "server", "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
                     "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1",
                     "--port", str(port), "--workers", "1"], log, dict(os.environ))
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process, log)
        yield f"http://127.0.0.1:{port}", tmp
    finally:
        stop(process)


@pytest.fixture(scope="module")
def registered_on_server(tracking_server):
    uri, tmp = tracking_server
    os.environ["MLFLOW_TRACKING_URI"] = uri  # what a team sets; params.yaml stays untouched
    try:
        params = pipeline_params(tmp / "work", tracking_uri="sqlite:///unused.db")
        result = run_pipeline(params)
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    return uri, result


def test_train_and_register_against_a_tracking_server(registered_on_server):
    uri, result = registered_on_server
    assert result["promoted"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("anipop", "champion")
    run = client.get_run(version.run_id)
    assert run.data.tags["registered_version"] == str(version.version)
    experiment = client.get_experiment_by_name("anipop-test")
    runs = client.search_runs([experiment.experiment_id])
    assert any(r.info.run_name == "train_mean" and "mse" in r.data.metrics for r in runs)  # evaluation too
    assert not (Path.cwd() / "unused.db").exists()


def test_models_serve_answers_a_pitch_and_rejects_bad_input(registered_on_server, tmp_path):
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("fastapi") is None:
        pytest.skip("the MLflow serving extra (uvicorn, fastapi) is not installed")
    uri, _ = registered_on_server
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    process = start([*MLFLOW, "models", "serve", "-m", "models:/anipop@champion", "--env-manager", "local",
                     "-h", "127.0.0.1", "-p", str(port), "-w", "1"], log, env)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", process, log, timeout_s=120)
        good = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=60, json={
            "dataframe_records": [{"synopsis": PITCH, "characters": '[{"name": "Aoi", "description": "a drummer"}]'}]})
        assert good.status_code == 200, good.text
        (prediction,) = good.json()["predictions"]
        assert prediction["score_low"] <= prediction["score"] <= prediction["score_high"]
        assert 1 <= prediction["score"] <= 10

        bad = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=60,
                         json={"dataframe_records": [{"synopsis": "   "}]})
        assert bad.status_code == 400
        assert "field 'synopsis': empty" in bad.json()["message"]
    finally:
        stop(process)
