"""A project that has run can be copied elsewhere: its MLflow store follows it (issue: relocatable project)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import yaml
from conftest import params_in


def test_a_copied_project_reads_and_writes_artifacts_in_the_copy(tmp_path):
    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    params = params_in(original, mlflow={"tracking_uri": "sqlite:///mlflow.db", "artifact_location": "mlruns",
                                         "experiment": "anipop-relocate"})
    (original / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")), encoding="utf-8")
    # every MLflow call runs in a new process in the project folder, as a user runs it: within one process
    # MLflow caches a store per URI, so a relative sqlite URI used earlier from another folder would be reused
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the store is params.yaml's
    first = """
import mlflow, yaml
from anipop.core.config import Params
from anipop.tracking import use_experiment
use_experiment(Params.model_validate(yaml.safe_load(open("params.yaml"))))
with mlflow.start_run() as run:
    mlflow.log_text("first", "note.txt")
print(run.info.run_id)
"""
    logged = subprocess.run([sys.executable, "-c", first], cwd=original, env=env, capture_output=True, text=True,
                            timeout=120)
    assert logged.returncode == 0, logged.stderr[-2000:]
    run_id = logged.stdout.split()[-1]
    shutil.copytree(original, copy)
    shutil.rmtree(original / "mlruns")  # anything still written to the original folder would show up here

    # a new process in the copy, as a user would run it (MLflow caches a store per URI within a process)
    check = f"""
import mlflow, yaml
from anipop.core.config import Params
from anipop.tracking import use_experiment
params = Params.model_validate(yaml.safe_load(open("params.yaml")))
experiment_id = use_experiment(params)
client = mlflow.MlflowClient()
assert client.get_experiment(experiment_id).artifact_location == {(copy / "mlruns").as_uri()!r}
assert client.get_run({run_id!r}).info.artifact_uri.startswith({(copy / "mlruns").as_uri()!r})
assert mlflow.artifacts.load_text("runs:/{run_id}/note.txt") == "first"
with mlflow.start_run():
    mlflow.log_text("second", "note.txt")
"""
    result = subprocess.run([sys.executable, "-c", check], cwd=copy, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (original / "mlruns").exists()
