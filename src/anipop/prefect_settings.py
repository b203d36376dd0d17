"""Prefect settings for flow runs on this machine's temporary server, applied before Prefect is imported.

Why a module of its own, free of Prefect: Prefect 3 reads its settings once, when it is imported. Setting
PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS after `import prefect` changes nothing (measured: still 20), and
20 s is not enough for the temporary server on a loaded 2-core machine (`python flows/pipeline.py` failed after
37 s with "Timed out while attempting to connect to ephemeral Prefect API server"; its retry passed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

EPHEMERAL_STARTUP_TIMEOUT_S = 120
_TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
_STARTUP_TIMEOUT_MESSAGE = "Timed out while attempting to connect to ephemeral Prefect API server"


def quiet_local_prefect() -> None:
    """Unless the user set them: a longer start-up wait for the temporary server, no telemetry (offline it logs an
    ERROR at every start), and no INFO line per HTTP request to the server. Call before importing prefect."""
    os.environ.setdefault(_TIMEOUT_SETTING, str(EPHEMERAL_STARTUP_TIMEOUT_S))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def startup_failure_line(error: BaseException) -> str | None:
    """The one line that names the fix when the temporary server still did not start; None for other errors."""
    if _STARTUP_TIMEOUT_MESSAGE not in str(error):
        return None
    return (f"error: Prefect's temporary server did not answer within {os.environ.get(_TIMEOUT_SETTING, '20')} s "
            f"(a loaded machine): run again, raise {_TIMEOUT_SETTING}, or point PREFECT_API_URL at a running "
            f"server (`prefect server start`)")


def run_flow_or_exit(label: str, start: Callable[[], object]) -> None:
    """A flow script's run (`start()` returns its final state): SystemExit with one line when the temporary
    server did not start or the run did not complete, so neither ends in a traceback."""
    try:
        state = start()
    except RuntimeError as err:
        line = startup_failure_line(err)
        if line is None:
            raise
        raise SystemExit(line) from None
    if not state.is_completed():
        raise SystemExit(f"{label} {state.name.lower()}: {state.message}")
