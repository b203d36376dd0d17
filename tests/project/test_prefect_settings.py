"""The flow entry points raise Prefect's start-up wait before Prefect reads its settings (once, at import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from anipop.prefect_settings import EPHEMERAL_STARTUP_TIMEOUT_S, startup_failure_line

REPO = Path(__file__).resolve().parents[2]
SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


@pytest.mark.parametrize("script", ["pipeline", "replay", "retrain"])
def test_importing_a_flow_script_gives_the_temporary_server_time_to_start(script):
    env = {k: v for k, v in os.environ.items() if k != SETTING}
    code = (f"import sys; sys.path.insert(0, 'flows'); import {script}\n"
            "from prefect.settings import get_current_settings\n"
            "s = get_current_settings(); print(s.server.ephemeral.startup_timeout_seconds, s.server.analytics_enabled)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == [str(EPHEMERAL_STARTUP_TIMEOUT_S), "False"]


def test_a_users_own_setting_is_kept():
    code = ("import sys; sys.path.insert(0, 'flows'); import pipeline\n"
            "from prefect.settings import get_current_settings\n"
            "print(get_current_settings().server.ephemeral.startup_timeout_seconds)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, SETTING: "300"},
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-1] == "300", out.stderr[-2000:]


def test_a_start_up_time_out_becomes_one_line_naming_the_fix():
    line = startup_failure_line(RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server."))
    assert line is not None and "\n" not in line and SETTING in line and "PREFECT_API_URL" in line
    assert startup_failure_line(RuntimeError("something else")) is None


def test_schedule_against_a_dead_server_names_its_url():
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_API_URL": url}
    out = subprocess.run([sys.executable, "-m", "anipop.cli", "schedule"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"PREFECT_API_URL={url} does not answer" in out.stderr and "Traceback" not in out.stderr
