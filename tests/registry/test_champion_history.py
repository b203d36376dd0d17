"""Which version served when: the champion history kept as registered-model tags, read back by another process."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime

import pytest
from conftest import params_in
from fixtures_pipeline import write_params
from mlflow import MlflowClient

from anipop.registry.champion_history import champion_on, read_history, record_change


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("anipop")
    return uri, client


def test_changes_are_appended_in_order_and_answer_which_version_served(store):
    _, client = store
    assert read_history(client, "anipop") == [] and read_history(client, "never-registered") == []
    first = record_change(client, "anipop", "1", None, "2016-01-01", "2015-09-30", "dvc:aaa", "no current champion")
    second = record_change(client, "anipop", "3", "1", "2018-01-01", "2017-09-28", "dvc:bbb", "spearman=0.70 beats v1")
    history = read_history(client, "anipop")
    assert [c.sequence for c in history] == [1, 2] and history[1].previous == "1"
    assert champion_on(history, date(2017, 6, 1), by="as_of").version == "1"
    assert champion_on(history, date(2018, 1, 1), by="as_of").version == "3"
    assert champion_on(history, date(2015, 1, 1), by="as_of") is None
    moved = datetime.fromisoformat(second.time)
    assert champion_on(history, moved).version == "3" and first.time <= second.time


def test_a_new_process_reads_the_history_back(store, tmp_path):
    uri, client = store
    record_change(client, "anipop", "1", None, "2016-01-01", "2015-09-30", "dvc:aaa", "no current champion")
    record_change(client, "anipop", "2", "1", "2017-01-01", "2016-09-30", "dvc:bbb", "spearman=0.71 beats v1")
    params = write_params(params_in(tmp_path, mlflow={"tracking_uri": uri}), tmp_path / "params.yaml")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}

    def history(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "anipop.cli", "registry", "history", "--params", params, *args],
                              capture_output=True, text=True, env=env, timeout=120)

    table = history()
    assert table.returncode == 0, table.stderr
    assert "| 2 | " in table.stdout and "| v2 | v1 | 2017-01-01 |" in table.stdout
    on = history("--as-of", "2016-06-30")
    assert on.returncode == 0 and "anipop v1 was champion on 2016-06-30" in on.stdout
    before = history("--as-of", "2010-01-01")
    assert before.returncode == 1 and "no champion on 2010-01-01" in before.stdout
    bad = history("--at", "yesterday")
    assert bad.returncode == 2 and "not a date" in bad.stderr and "Traceback" not in bad.stderr
