"""What every `anipop` command shares: reading params.yaml, and running a step so that a failure is one line.

Why apart: the command modules (pipeline, studies, registry, serving) differ only in which step they call; how a
command loads its settings and turns an expected failure into an exit status is decided once, here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from anipop.core.config import DEFAULT_PARAMS_FILE, ConfigError, Params, load_params
from anipop.core.utils import TRANSIENT_EXIT, is_transient, redact, setup_logging

Result = TypeVar("Result")
ParamsOption = typer.Option(DEFAULT_PARAMS_FILE, "--params", help="path to params.yaml")


def params_from(path: Path) -> Params:
    """params.yaml at `path`, with logging set up; a bad file exits with 2 and one line naming the key."""
    setup_logging()
    # MLflow's sqlite store logs every database error with its traceback before raising it; anipop reports the
    # raised error in one line naming the store (a read-only or full mlflow.db), so that log is only noise here
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return load_params(path)
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err


def run_step(step: Callable[[Params], Result], params: Params,
             expected: tuple[type[Exception], ...] = ()) -> Result:
    """Run a step; expected failures (bad data, bad config, plus the step's own `expected` errors) print one
    clear line instead of a traceback. A transient one (a lost connection, a timeout) exits with
    TRANSIENT_EXIT, which the Prefect flow retries; any other failure exits with 1."""
    from anipop.data.schema import SchemaError

    try:
        return step(params)
    except Exception as err:
        logging.getLogger("anipop").debug("step failed", exc_info=True)
        if is_transient(err):
            typer.echo(f"error: {redact(err)} (transient: worth a retry)", err=True)
            raise typer.Exit(TRANSIENT_EXIT) from err
        if isinstance(err, (SchemaError, FileNotFoundError, ValueError, KeyError, OSError, *expected)):
            typer.echo(f"error: {redact(err)}", err=True)  # a message may quote a URI with credentials
            raise typer.Exit(1) from err
        if not _from_mlflow(err):
            raise
        # an MLflow failure anipop does not wrap itself (e.g. a read-only or full store while logging a run)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        typer.echo(f"error: MLflow store {redact(_store(params))}: {redact(first)}", err=True)
        raise typer.Exit(1) from err


def _from_mlflow(err: Exception) -> bool:
    return any(cls.__module__.split(".")[0] == "mlflow" for cls in type(err).__mro__)


def _store(params: Params) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or params.mlflow.tracking_uri
