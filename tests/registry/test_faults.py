"""Faults: a `dvc repro` killed mid-stage, a tracking server that is down, an output folder that cannot be written.

- Killed: SIGKILL (the process group, as an OOM killer or a lost node would) during `embed`, then during
  `train`; each rerun resumes, and the outputs equal those of an uninterrupted run in another repository.
- Tracking server down: evaluate and register fail within seconds with one line naming the tracking URI;
  a registration that fails half-way withdraws its version, so the registry never holds a half-registered one.
- Unwritable output (a folder under a regular file, or a full disk): one line "error: ... <path> ...",
  exit code 1, no traceback, no partial file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import CHARACTERS_SAMPLE, REAL_DATA, REPO_ROOT, params_in, workspace_params
from fixtures_pipeline import pipeline_params, register_killed_after_moving_champion
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from typer.testing import CliRunner

from anipop.cli import app
from anipop.core.utils import TRANSIENT_EXIT
from anipop.data.prepare import run_prepare
from anipop.embedding.embed import run_embed
from anipop.evaluation.evaluate import run_evaluate
from anipop.modeling.train import run_train
from anipop.registry.register import run_register
from anipop.sources.ingest import run_ingest
from anipop.steps import call_step
from anipop.tracking import TrackingUnavailable

VENV_BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


# ---------------------------------------------------------------- dvc repro killed mid-stage

def _make_repo(folder: Path) -> Path:
    """dvc.yaml, src/ and a fast params.yaml in a fresh git + DVC repository (as tests/integration/test_e2e_pipeline.py)."""
    folder.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dvc.yaml", folder)
    shutil.copytree(REPO_ROOT / "src", folder / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = workspace_params()
    params["ingest"].update(local_path=str(REAL_DATA.resolve()), limit=80,
                            characters_dir=str(CHARACTERS_SAMPLE.resolve()))
    params["embed"]["batch_size"] = 4  # 20 batches, each one cache shard: a kill lands between two of them
    params["train"].update(model="ridge", models=["ridge", "mlp_small"], ablations=[])  # ~4 s of fits, then saves
    params["evaluate"].update(bootstrap_samples=20, cv_folds=2)  # backtest and multimodal run before evaluate
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True)
    return folder


def _start_repro(repo: Path, log_name: str) -> subprocess.Popen:
    """`dvc repro evaluate` in its own process group, so one killpg takes DVC and the stage command down."""
    log_path = repo / log_name
    with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "evaluate"], cwd=repo, env=_env(),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    process.log_path = log_path
    return process


def _finish(process: subprocess.Popen, timeout: float = 600) -> str:  # a hang guard only
    process.wait(timeout=timeout)
    output = process.log_path.read_text()
    assert process.returncode == 0, output[-3000:]
    return output


def _kill_when(process: subprocess.Popen, condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
    """SIGKILL the whole process group as soon as `condition` holds; fail if the run ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"dvc repro ended before {what}:\n{process.log_path.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)  # reaps DVC, so the pid its rwlock entry names is gone


@pytest.mark.e2e
def test_dvc_repro_killed_during_embed_and_train_resumes_to_the_same_outputs(tmp_path):
    """Killed twice, rerun, the pipeline finishes with the outputs of a run that never stopped.

    DVC and the lock: SIGKILL leaves the dead run's entries in .dvc/tmp/rwlock; DVC 3 (3.67 here) drops an
    entry whose pid is gone, with "WARNING: Process ... had been killed. Auto removed it from the lock file",
    so a plain `dvc repro` is all a user runs: no lock file to delete. (If an entry names a *live* process,
    another dvc is still running: wait for it or end it.) The repo lock (.dvc/tmp/lock) dies with the process.
    Equality: embeddings and metrics are compared byte for byte. The cache holds whole batches and the
    rerun batches what is missing in the same longest-first order, so every vector comes from the same
    batch (same padding, same kernels) as in the uninterrupted run; ridge and the seeded, deterministic
    network then see identical inputs.
    """
    if not REAL_DATA.exists():
        pytest.skip(f"real MAL sample not found at {REAL_DATA}")
    clean, killed = _make_repo(tmp_path / "clean"), _make_repo(tmp_path / "killed")
    reference = _start_repro(clean, "repro.log")  # the uninterrupted run, alongside

    first = _start_repro(killed, "repro-1.log")
    _kill_when(first, lambda: any(killed.glob(".cache/embeddings/*/shard-*.npz")), "the first embedding batch")
    assert not (killed / "data/embeddings/manifest.json").exists(), "embed was not killed mid-way"

    second = _start_repro(killed, "repro-2.log")
    _kill_when(second, lambda: "train: fitting" in second.log_path.read_text(), "train's first fit")
    assert not (killed / "models/train_report.json").exists(), "train was not killed mid-way"
    third = _finish(_start_repro(killed, "repro-3.log"))
    assert "Running stage 'train'" in third and "Running stage 'embed'" not in third  # embed finished in run 2
    for rerun in ("repro-2.log", "repro-3.log"):  # DVC itself clears the dead run's lock entries
        assert "had been killed. Auto removed it from the lock file" in (killed / rerun).read_text()
    _finish(reference)

    run_log = json.loads((killed / ".cache/embeddings/last_run.json").read_text())["kinds"]["synopsis"]
    assert run_log["from_cache"] > 0 and run_log["embedded"] + run_log["from_cache"] == run_log["count"]
    for name in ("data/embeddings/synopsis.npy", "data/embeddings/synopsis_ids.json", "data/prepared/anime.parquet",
                 "reports/metrics.json", "reports/ablation.json"):
        assert (killed / name).read_bytes() == (clean / name).read_bytes(), name
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "evaluate"], cwd=killed, env=_env(),
                            capture_output=True, text=True, check=True)
    assert "Data and pipelines are up to date" in status.stdout  # dvc.lock is whole after the kills


# ---------------------------------------------------------------- tracking server down, registration half-way

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small real run up to evaluate (sqlite store under tmp), shared by the tracking and disk tests."""
    tmp_path = tmp_path_factory.mktemp("faults")
    params = pipeline_params(tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        # set (empty: params' store is used), not deleted: undoing it also removes the MLFLOW_TRACKING_URI
        # that mlflow.set_tracking_uri exports, which would otherwise point later tests at this store
        patch.setenv("MLFLOW_TRACKING_URI", "")
        for step in (run_ingest, run_prepare, run_embed, run_train, run_evaluate):
            call_step(step, params)
    return params


@pytest.fixture
def restore_mlflow_uri():
    """The steps point mlflow's global tracking and registry URIs at their store; put both back afterwards (the
    MLFLOW_TRACKING_URI that set_tracking_uri exports is put back by conftest's autouse fixture, torn down after)."""
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def _params_file(params, folder: Path, **paths: Path) -> Path:
    """params as a params.yaml the CLI can read, with some paths replaced."""
    raw = params.model_dump(mode="json")
    raw["paths"].update({name: str(path) for name, path in paths.items()})
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _closed_port() -> int:
    with socket.socket() as probe:  # bound then released: nothing listens there afterwards
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _one_error_line(result, exit_code: int = 1) -> str:
    """The CLI's failure contract: exit code 1 (TRANSIENT_EXIT for a network failure worth a retry), exactly one
    'error: ...' line on stderr, no traceback."""
    assert result.exit_code == exit_code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def test_tracking_server_down_fails_fast_with_one_line_naming_the_uri(trained, tmp_path, monkeypatch,
                                                                       restore_mlflow_uri):
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the default retries for minutes
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    params_file = _params_file(trained, tmp_path)
    registration = Path(trained.paths.reports_dir) / "registration.json"
    for command in ("evaluate", "register"):
        started = time.monotonic()
        result = CliRunner().invoke(app, [command, "--params", str(params_file)])
        error = _one_error_line(result, exit_code=TRANSIENT_EXIT)  # the flow retries it; bad data it would not
        assert f"MLflow tracking store {uri} is unreachable" in error and "nothing was logged" in error, error
        assert time.monotonic() - started < 30, f"{command} took too long to give up"
    assert not registration.exists()


def test_registration_failing_half_way_withdraws_its_version(trained, monkeypatch, restore_mlflow_uri):
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    name, uri = trained.registry.model_name, trained.mlflow.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    registration = Path(trained.paths.reports_dir) / "registration.json"

    def server_gone(*args, **kwargs):
        raise MlflowException("simulated: the tracking server went away", error_code=TEMPORARILY_UNAVAILABLE)

    # the server dies after the version is created, before the champion alias is set: the last step
    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "set_registered_model_alias", server_gone)
        with pytest.raises(TrackingUnavailable, match=rf"{uri} failed while registering {name} v1 \(v1 withdrawn\)"):
            run_register(trained)
    assert client.search_model_versions(f"name='{name}'") == [] and not registration.exists()

    first = run_register(trained)  # the server is back: a complete version, now champion
    champion = client.get_model_version_by_alias(name, "champion")
    assert str(champion.version) == first["version"] and first["promoted"]
    assert {"test_split", "test.spearman", "baseline.mse"} <= set(champion.tags) and champion.description

    # a failing champion lookup must not read as "no champion yet" (that would promote anything); another
    # interval coverage makes it a new registration (the same model and data again would be a no-op)
    changed = trained.model_copy(update={"registry": trained.registry.model_copy(update={"interval_coverage": 0.8})})
    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "get_model_version_by_alias", server_gone)
        with pytest.raises(TrackingUnavailable, match=rf"{uri}: cannot read the champion of {name}"):
            run_register(changed)
    assert [str(v.version) for v in client.search_model_versions(f"name='{name}'")] == [first["version"]]


# ---------------------------------------------------------------- unwritable output

def test_output_folder_under_a_regular_file_is_one_error_line(trained, tmp_path):
    # tests run as root, where a read-only chmod stops nothing: a folder below a regular file fails for anyone
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    target = blocker / "prepared"
    params_file = _params_file(trained, tmp_path, prepared_dir=target)
    result = subprocess.run(["anipop", "prepare", "--params", str(params_file)], env=_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: cannot write {target / 'anime.parquet'}: Not a directory"]


def test_disk_full_is_one_error_line_naming_the_file_and_leaves_no_partial_file(trained, tmp_path, monkeypatch):
    def disk_full(self, *args, **kwargs):  # as pyarrow reports it: an errno, no file name
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    prepared = tmp_path / "prepared"
    params_file = _params_file(trained, tmp_path, prepared_dir=prepared)
    result = CliRunner().invoke(app, ["prepare", "--params", str(params_file)])
    error = _one_error_line(result)
    assert error == f"error: [Errno 28] cannot write {prepared / 'anime.parquet'}: No space left on device"
    assert list(prepared.iterdir()) == []  # the temp file is gone; no truncated table is left behind


def test_a_store_chosen_earlier_in_the_process_does_not_stick(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; a later params file must still get its own store."""
    import mlflow

    from anipop import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = params_in(tmp_path / "a", mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'a.db'}"})
    second = params_in(tmp_path / "b", mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'b.db'}"})
    tracking.use_tracking_store(first)
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'a.db'}"
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert tracking.tracking_uri(second) == f"sqlite:///{tmp_path / 'b.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")  # the user's own choice wins
    assert tracking.tracking_uri(second) == "http://127.0.0.1:1"


# ---------------------------------------------------------------- credentials, default timeouts, kills

def test_unreachable_server_fails_fast_by_default_and_the_password_never_shows(trained, tmp_path, monkeypatch,
                                                                              restore_mlflow_uri):
    """No MLFLOW_HTTP_* overrides: params' bounded timeout applies; the URI is shown with its credentials redacted."""
    port = _closed_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:s3cr3t-pw@127.0.0.1:{port}")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    params_file = _params_file(trained, tmp_path)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "anipop.cli", "register", "--params", str(params_file)],
                            env={**_env(), "MLFLOW_TRACKING_URI": f"http://alice:s3cr3t-pw@127.0.0.1:{port}"},
                            capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == TRANSIENT_EXIT, result.stderr
    assert "s3cr3t-pw" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"MLflow tracking store http://***@127.0.0.1:{port} is unreachable" in errors[0]
    assert elapsed < 45, f"gave up only after {elapsed:.0f}s"


def test_redact_covers_userinfo_and_secret_query_values():
    from anipop.core.utils import redact

    assert redact("http://user:pw@host:5000/x") == "http://***@host:5000/x"
    assert redact("error talking to https://tok@mlflow.example/api?x=1&token=abc&b=2") == (
        "error talking to https://***@mlflow.example/api?x=1&token=***&b=2")
    assert redact("sqlite:///mlflow.db") == "sqlite:///mlflow.db"
    assert redact("postgresql://u:p@db/mlflow?password=p") == "postgresql://***@db/mlflow?password=***"


def test_logged_params_and_the_prefect_link_carry_no_credentials(trained, tmp_path, monkeypatch, restore_mlflow_uri):
    from anipop import orchestration
    from anipop.evaluation.mlflow_runs import log_evaluation_runs

    # its own reports folder: the evaluation record it writes (mlflow_runs.json) must not replace the shared
    # fixture's, from which the registration tests below register the evaluation's logged model
    secret_params = trained.model_copy(update={
        "mlflow": trained.mlflow.model_copy(update={"tracking_uri": trained.mlflow.tracking_uri + "?password=hunter2"}),
        "paths": trained.paths.model_copy(update={"reports_dir": tmp_path / "reports"})})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.mlflow.tracking_uri)  # the store the run really goes to
    run_id = log_evaluation_runs(secret_params, {}, artifacts=[])["parent_run_id"]
    stored = MlflowClient(tracking_uri=trained.mlflow.tracking_uri).get_run(run_id).data.params
    assert stored["mlflow.tracking_uri"].endswith("?password=***")
    assert not any("hunter2" in value for value in stored.values())

    class FakeClient:
        def __init__(self, tracking_uri):
            pass

        def get_run(self, run_id):
            return type("Run", (), {"info": type("Info", (), {"experiment_id": "7"})()})()

    monkeypatch.setattr("mlflow.tracking.MlflowClient", FakeClient)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://bob:pa55@mlflow.example")
    assert orchestration.mlflow_run_link(trained, "abc") == \
        "https://***@mlflow.example/#/experiments/7/runs/abc?workflowType=machine_learning"
    # the leaderboard's view link, stored in the parent run's description, is built on the same redacted base
    from anipop.evaluation.mlflow_leaderboard import view_link
    from anipop.tracking import ui_base_url

    link = view_link(ui_base_url(trained), "7", "abc")
    assert link.startswith("https://***@mlflow.example/#/experiments/7/runs?") and "pa55" not in link


def _cli(params_file: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "anipop.cli", *args, "--params", str(params_file)]


def _versions(params) -> list:
    uri = params.mlflow.tracking_uri
    return list(MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions(
        f"name='{params.registry.model_name}'"))


def _wait_for_line(process: subprocess.Popen, needle: str, timeout_s: float = 180) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    for line in process.stdout:
        seen.append(line)
        if needle in line:
            return seen
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"never saw {needle!r}:\n{''.join(seen)[-3000:]}")


def _new_registration(params, coverage: float):
    """Params whose registration is new to the registry (another interval coverage: another registration key)."""
    return params.model_copy(update={"registry": params.registry.model_copy(update={"interval_coverage": coverage})})


def test_register_killed_right_after_creating_its_version_is_rolled_back_by_the_next(trained, tmp_path):
    name = trained.registry.model_name
    params_file = _params_file(_new_registration(trained, 0.85), tmp_path)
    before = {str(v.version) for v in _versions(trained)}
    process = subprocess.Popen(_cli(params_file, "register"), env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_line(process, "Created version")
        os.killpg(process.pid, signal.SIGKILL)  # no handler runs: the version stays half-registered
    finally:
        process.wait(timeout=30)
    killed = [v for v in _versions(trained) if str(v.version) not in before]
    assert len(killed) == 1 and killed[0].tags.get("anipop.registration") == "pending", \
        "the kill landed after the registration completed; nothing left to roll back"
    client = MlflowClient(tracking_uri=trained.mlflow.tracking_uri, registry_uri=trained.mlflow.tracking_uri)
    assert client.get_run(killed[0].run_id).info.status == "RUNNING"

    # the version was registered from the evaluation's logged model, in its child run (reports/mlflow_runs.json)
    logged = json.loads((Path(trained.paths.reports_dir) / "mlflow_runs.json").read_text())
    assert killed[0].run_id == logged["children"][logged["primary"]]["run_id"]

    rerun = subprocess.run(_cli(params_file, "register"), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"v{killed[0].version} withdrawn" in rerun.stdout
    now = {str(v.version): v for v in _versions(trained)}
    assert str(killed[0].version) not in now
    added = [v for v in now.values() if str(v.version) not in before]
    assert len(added) == 1 and added[0].tags.get("anipop.registration") == "complete"
    # the rollback ended the run FAILED; the rerun registered the same logged model from it again, so the run
    # ends FINISHED naming the new version: not left RUNNING, and not FAILED under a complete version
    run = client.get_run(killed[0].run_id)
    assert added[0].run_id == killed[0].run_id and run.info.status == "FINISHED"
    assert run.data.tags["registered_version"] == str(added[0].version)
    assert not [m for m in client.search_registered_models() if m.name == f"{name}.lock"]  # lock released


def test_tightened_serving_limits_reach_the_champion_with_evaluate_and_register(trained, tmp_path,
                                                                                restore_mlflow_uri):
    """An operator tightens a limit during an incident: `dvc repro register` reruns evaluate (the limits travel
    inside the logged model) and register, which promotes the same model with the new limits whatever the
    policy; a rerun with nothing changed registers nothing."""
    from anipop.serving.model_loading import load_model

    uri = trained.mlflow.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = trained.registry.model_name
    run_register(trained)
    before = client.get_model_version_by_alias(name, "champion")
    tight = trained.model_copy(update={"serving": trained.serving.model_copy(update={"max_characters_per_pitch": 1}),
                                       "registry": trained.registry.model_copy(update={"policy": "test_split"})})
    run_evaluate(tight)
    result = run_register(tight)
    now = client.get_model_version_by_alias(name, "champion")
    assert result["promoted"] and str(now.version) != str(before.version), result
    assert "new serving limits" in now.tags["reason"]
    served = load_model(f"models:/{name}@champion").unwrap_python_model().predictor
    assert served.limits.max_characters_per_pitch == 1
    assert run_register(tight)["version"] == str(now.version)  # unchanged: the same registration, found by key
    run_evaluate(trained)  # the fixture's state back for the tests after this one
    run_register(trained)


def test_register_killed_between_moving_champion_and_completing_gives_champion_back(trained, tmp_path):
    """The alias already points at the new, pending version when the process dies (SIGKILL: no handler runs).
    The next registration must give `champion` back to the version that held it, so the served alias never
    disappears: `models:/<name>@champion` resolves throughout."""
    uri = trained.mlflow.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = trained.registry.model_name
    subprocess.run(_cli(_params_file(trained, tmp_path), "register"), env=_env(), check=True, capture_output=True,
                   timeout=300)
    holder = str(client.get_model_version_by_alias(name, "champion").version)
    always = _new_registration(trained, 0.83)  # promoted whatever it scores: the alias moves
    always = always.model_copy(update={"registry": always.registry.model_copy(update={"policy": "always"})})
    params_file = _params_file(always, tmp_path)
    killed = register_killed_after_moving_champion(params_file, _env())
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    pending = str(client.get_model_version_by_alias(name, "champion").version)
    assert pending != holder and client.get_model_version(name, pending).tags["anipop.registration"] == "pending"

    rerun = subprocess.run(_cli(params_file, "register"), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"champion restored to v{holder}" in rerun.stdout and f"v{pending} withdrawn" in rerun.stdout
    now = str(client.get_model_version_by_alias(name, "champion").version)  # resolves: never left without one
    assert now != pending and client.get_model_version(name, now).tags["anipop.registration"] == "complete"


def test_a_register_whose_parent_is_killed_stops_and_is_never_registered_twice(trained, tmp_path):
    """As when only `dvc` is killed: its `anipop register` child must not finish unseen and be repeated."""
    params_file = _params_file(_new_registration(trained, 0.87), tmp_path)
    parent_code = ("import subprocess, sys; child = subprocess.Popen(sys.argv[1:]); "
                   "print(child.pid, flush=True); child.wait()")
    parent = subprocess.Popen([sys.executable, "-c", parent_code, *_cli(params_file, "register")], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        _wait_for_line(parent, "registry: registering")
        parent.kill()  # SIGKILL the parent only; the child is orphaned, as under a killed `dvc repro`
        parent.wait(timeout=30)
        gone = False
        for _ in range(120):
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                gone = True
                break
            time.sleep(0.5)
        assert gone, "the orphaned register kept running after its parent died"
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for _ in range(2):  # the next `dvc repro`, twice: one complete version for this model and data, no more
        rerun = subprocess.run(_cli(params_file, "register"), env=_env(), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
    keys = [v.tags.get("anipop.key") for v in _versions(trained)]
    assert all(v.tags.get("anipop.registration") == "complete" for v in _versions(trained))
    assert len(keys) == len(set(keys)), keys


def test_a_read_only_tracking_store_is_one_line_naming_it(trained, tmp_path):
    """sqlite's own read-only mode (tests run as root, where chmod stops nothing): evaluate and register."""
    db = trained.mlflow.tracking_uri.removeprefix("sqlite:///")
    read_only = trained.model_copy(update={"mlflow": trained.mlflow.model_copy(update={
        "tracking_uri": f"sqlite:///file:{db}?mode=ro&uri=true", "experiment": "never-created"})})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(read_only.model_dump(mode="json"), sort_keys=False))
    for command in ("evaluate", "register"):  # in tmp_path: the "file:..." URI is a relative path to some code
        result = subprocess.run(_cli(params_file, command), env=_env(), capture_output=True, text=True, timeout=300,
                                cwd=tmp_path)
        assert result.returncode == 1, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and db in errors[0] and "readonly database" in errors[0], result.stderr[-3000:]
