"""Starting and stopping real servers (MLflow, Prefect) on 127.0.0.1 in tests, with nothing left running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tracking_server_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) for an `mlflow server`, without MLflow 3's job runner.

    Why: by default the server starts huey consumers for its own jobs (GenAI judges, trace roll-ups), which
    anipop never submits; in a suite profile they took 458 s of the 2,132 s of CPU, mostly importing mlflow again
    and again, beside the tests that run on the same two cores. docs/mlflow.md's team server turns them off too.
    """
    return {**(os.environ if env is None else env), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def start(cmd: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    """Own process group, so stopping it also stops the children it spawned (workers, flow runs)."""
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return False


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    """Return once `url` answers 200; fail with the server's log if it exits or stays down past timeout_s."""
    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log)}")
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_until(answers, timeout_s):
        raise RuntimeError(f"{url} not up after {timeout_s}s:\n{tail(log)}")


@contextmanager
def model_server(model_uri: str, env: dict[str, str], log: Path, timeout_s: float = 120) -> Iterator[str]:
    """`mlflow models serve` of `model_uri` on a free 127.0.0.1 port, this venv first on PATH (MLflow starts its
    uvicorn from there); yields the /invocations URL once /ping answers, and stops the server afterwards."""
    port = free_port()
    env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.environ['PATH'])}"}
    process = start([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                     "-h", "127.0.0.1", "-p", str(port), "-w", "1"], log, env)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", process, log, timeout_s=timeout_s)
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        stop(process)
