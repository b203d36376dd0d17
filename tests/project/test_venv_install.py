"""scripts/venv_install.py: uv gets pip's sources (pip.conf, PIP_* variables), and pip takes over when uv fails."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "venv_install.py"


@pytest.fixture
def venv_install():
    spec = importlib.util.spec_from_file_location("venv_install", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PIP_CONFIG_LIST = """:env:.find-links='/opt/wheels'
global.constraint='/etc/pip/constraints.txt'
global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'
global.find-links='/ignored/by/the/env'
global.index-url='https://mirror.example/simple'
install.no-index='false'
user.something='else'
"""


def _fake_run(calls: list, uv_fails: bool):
    def run(command, **kwargs):
        calls.append(command)
        if command[-2:] == ["config", "list"]:
            return subprocess.CompletedProcess(command, 0, stdout=PIP_CONFIG_LIST)
        if uv_fails and "uv" in command[:3]:
            raise subprocess.CalledProcessError(2, command)
        return subprocess.CompletedProcess(command, 0)
    return run


def test_uv_gets_the_indexes_find_links_and_constraints_pip_would_use(venv_install, monkeypatch):
    calls: list = []
    monkeypatch.setattr(subprocess, "run", _fake_run(calls, uv_fails=False))
    monkeypatch.setattr(subprocess, "call", lambda command: pytest.fail(f"pip fallback ran: {command}"))
    assert venv_install.main(["-c", "requirements.lock", "-e", ".[dev]"]) == 0
    uv = calls[-1]
    assert uv[:4] == [sys.executable, "-m", "uv", "pip"] and "--compile-bytecode" in uv  # as pip does
    flags = list(zip(uv, uv[1:]))
    assert ("--index-url", "https://mirror.example/simple") in flags
    assert ("--extra-index-url", "file:///opt/a/simple") in flags and ("--extra-index-url", "file:///opt/b/simple") in flags
    assert ("--find-links", "/opt/wheels") in flags and "/ignored/by/the/env" not in uv  # PIP_FIND_LINKS wins
    assert ("--constraint", "/etc/pip/constraints.txt") in flags and "--no-index" not in uv
    assert uv[-4:] == ["-c", "requirements.lock", "-e", ".[dev]"]


def test_a_failing_uv_falls_back_to_pip_with_the_same_arguments(venv_install, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setattr(subprocess, "run", _fake_run(calls, uv_fails=True))
    monkeypatch.setattr(subprocess, "call", lambda command: calls.append(command) or 0)
    assert venv_install.main(["-c", "requirements.lock", "-e", ".[dev]"]) == 0
    assert calls[-1] == [sys.executable, "-m", "pip", "install", "--quiet", "-c", "requirements.lock", "-e", ".[dev]"]
    assert "installing with pip instead" in capsys.readouterr().err
