"""The team deployment of docs/mlflow.md, for real: PostgreSQL, MLflow's basic-auth app, proxied artifacts.

The test starts a PostgreSQL on 127.0.0.1 (fixtures_postgres), writes the page's `basic_auth.ini` and runs the
page's `mlflow server` command, each with this machine's values put in for the placeholders below (and one
worker). Then, signed in as the admin, the pipeline trains and registers through it, and `mlflow models serve`
serves the champion to a read-only user; an anonymous client and that read-only user cannot move `champion`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import httpx
import pytest
from conftest import REPO_ROOT
from fixtures_pipeline import PITCH, pipeline_params, run_pipeline
from fixtures_postgres import Postgres, postgres_install
from fixtures_servers import free_port, model_server, start, stop, tracking_server_env, wait_until_up
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from test_readme_commands import TEAM_SERVER, readme_commands

PAGE = REPO_ROOT / "docs" / "mlflow.md"
ADMIN, ADMIN_PASSWORD = "admin", "team-admin-password-123"
READER, READER_PASSWORD = "reader", "reader-password-12345"
MLFLOW = [sys.executable, "-m", "mlflow"]

pytestmark = pytest.mark.skipif(
    postgres_install() is None or importlib.util.find_spec("psycopg2") is None
    or importlib.util.find_spec("flask_wtf") is None,
    reason="needs the dev extra (pgserver's PostgreSQL, psycopg2, mlflow[auth])")


def page_blocks() -> tuple[str, str]:
    """The page's basic_auth.ini block and its `mlflow server` command."""
    text = PAGE.read_text(encoding="utf-8")
    (ini,) = re.findall(r"```ini\n(.*?)```", text, re.S)
    (server,) = [c for c in readme_commands(text) if c.startswith("mlflow server --app-name basic-auth")]
    assert server == TEAM_SERVER  # the command test_readme_commands.py lists is the one run here
    return ini, server


def filled(text: str, values: dict[str, str]) -> str:
    """`text` with each placeholder replaced; every placeholder must be there (the page cannot drift away)."""
    for placeholder, value in values.items():
        assert placeholder in text, f"docs/mlflow.md lost {placeholder!r}"
        text = text.replace(placeholder, value)
    return text


def as_user(user: str | None, password: str | None = None) -> dict[str, str]:
    """This environment without any MLflow setting (another test's MLFLOW_REGISTRY_URI would send a child process
    to its store), signed in as `user`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return env | ({"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password} if user else {})


@pytest.fixture(scope="module")
def team_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("team")
    database = Postgres(postgres_install()).start()
    try:
        tracking, users = database.create_database("mlflow"), database.create_database("mlflow_auth")
        database_host = f"{database.password}@127.0.0.1:{database.port}"
        port = free_port()
        ini, server = page_blocks()
        (tmp / "basic_auth.ini").write_text(filled(ini, {"PASSWORD@db-host:5432": database_host}))
        assert users.endswith("/mlflow_auth") and tracking.endswith("/mlflow")
        command = filled(server, {
            "--host 0.0.0.0": "--host 127.0.0.1", "--port 5000": f"--port {port}",
            '"mlflow-host:5000,mlflow-host.internal:5000"': f'"127.0.0.1:{port},localhost:{port}"',
            '"http://mlflow-host:5000"': f'"http://127.0.0.1:{port}"',
            "PASSWORD@db-host:5432": database_host, "s3://your-bucket/mlflow": str(tmp / "bucket")}) + " --workers 1"
        env = tracking_server_env(as_user(None)) | {
            "MLFLOW_AUTH_CONFIG_PATH": str(tmp / "basic_auth.ini"), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "team-test-secret-key",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # the venv's
        log = tmp / "server.log"
        process = start(["bash", "-c", command], log, env, cwd=tmp)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/health", process, log, timeout_s=240)
            yield f"http://127.0.0.1:{port}", tmp
        finally:
            stop(process)
    finally:
        database.stop()


@pytest.fixture(scope="module")
def registered(team_server):
    """The pipeline signed in as the admin; a read-only user with READ on the model and its experiment."""
    from mlflow.server import get_app_client

    url, tmp = team_server
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(as_user(ADMIN, ADMIN_PASSWORD) | {"MLFLOW_TRACKING_URI": url})
    try:
        params = pipeline_params(tmp / "work", tracking_uri=url)
        result = run_pipeline(params)
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        champion = client.get_model_version_by_alias("anipop", "champion")
        experiment = client.get_run(champion.run_id).info.experiment_id
        auth = get_app_client("basic-auth", tracking_uri=url)
        auth.create_user(READER, READER_PASSWORD)
        auth.grant_user_permission(READER, "registered_model", "anipop", "READ")
        auth.grant_user_permission(READER, "experiment", experiment, "READ")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return url, tmp, result, champion, params


def test_train_and_register_through_the_team_server_with_proxied_artifacts(registered):
    url, tmp, result, champion, _ = registered
    assert result["promoted"] and champion.version == "1"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
        patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        run = MlflowClient(tracking_uri=url).get_run(champion.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # the server stores them, clients hold no keys
    assert list((tmp / "bucket").rglob("model.skops")), "the registered model's data is in the server's bucket"


@pytest.mark.parametrize("who", ["anonymous", "wrong password"])
def test_a_client_without_credentials_cannot_move_the_champion(registered, who, monkeypatch):
    url, *_ = registered
    for name, value in as_user(None).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    if who == "wrong password":
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    with pytest.raises(MlflowException) as raised:
        client.set_registered_model_alias("anipop", "champion", "1")
    assert raised.value.error_code == "UNAUTHENTICATED"
    assert httpx.post(f"{url}/api/2.0/mlflow/registered-models/alias", timeout=30,
                      json={"name": "anipop", "alias": "champion", "version": "1"}).status_code == 401


def test_a_read_only_user_reads_the_champion_but_cannot_move_it(registered, monkeypatch):
    url, _, _, champion, _ = registered
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", READER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", READER_PASSWORD)
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    assert client.get_model_version_by_alias("anipop", "champion").version == champion.version
    for move in (lambda: client.set_registered_model_alias("anipop", "champion", champion.version),
                 lambda: client.delete_registered_model_alias("anipop", "champion")):
        with pytest.raises(MlflowException) as raised:
            move()
        assert raised.value.error_code == "PERMISSION_DENIED"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    assert client.get_model_version_by_alias("anipop", "champion").version == champion.version  # unmoved


def test_the_read_only_user_serves_the_champion_with_pickles_refused(registered, tmp_path):
    """A serving machine needs only READ: it downloads the champion through the server and answers a pitch,
    with MLflow's pickle switch off (the model is data and anipop's loading script)."""
    if importlib.util.find_spec("uvicorn") is None:
        pytest.skip("the MLflow serving extra (uvicorn) is not installed")
    url, *_ = registered
    env = as_user(READER, READER_PASSWORD) | {"MLFLOW_TRACKING_URI": url, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    with model_server("models:/anipop@champion", env, tmp_path / "serve.log", timeout_s=180) as invocations:
        answer = httpx.post(invocations, timeout=60, json={"dataframe_records": [{"synopsis": PITCH}]})
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert 1 <= prediction["score_low"] <= prediction["score"] <= prediction["score_high"] <= 10


def test_a_registration_killed_after_moving_champion_gives_it_back_on_the_team_server(registered, tmp_path):
    """On a real tracking server: SIGKILL right after `champion` moves to the new, pending
    version (no handler runs); the next registration gives the alias back to its holder, withdraws the pending
    version, then registers anew. `models:/anipop@champion` resolves throughout."""
    import signal
    import subprocess

    from fixtures_pipeline import register_killed_after_moving_champion, write_params

    url, _, _, champion, params = registered
    env = as_user(ADMIN, ADMIN_PASSWORD) | {"MLFLOW_TRACKING_URI": url}
    always = params.model_copy(update={"registry": params.registry.model_copy(
        update={"interval_coverage": 0.83, "policy": "always"})})  # a new registration, promoted whatever it scores
    params_file = write_params(always, tmp_path / "params.yaml")
    killed = register_killed_after_moving_champion(params_file, env)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
        patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        pending = str(client.get_model_version_by_alias("anipop", "champion").version)
        assert pending != champion.version
        assert client.get_model_version("anipop", pending).tags["anipop.registration"] == "pending"
        rerun = subprocess.run([sys.executable, "-m", "anipop.cli", "register", "--params", params_file], env=env,
                               capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert f"champion restored to v{champion.version}" in rerun.stdout and f"v{pending} withdrawn" in rerun.stdout
        now = str(client.get_model_version_by_alias("anipop", "champion").version)
        assert now != pending and client.get_model_version("anipop", now).tags["anipop.registration"] == "complete"
