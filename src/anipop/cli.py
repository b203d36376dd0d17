"""The `anipop` command: one sub-command per pipeline step, each a thin caller of the step function."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from anipop.config import DEFAULT_PARAMS_FILE, ConfigError, Params, load_params
from anipop.utils import setup_logging

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help="anipop: predict an anime's MyAnimeList score from its pitch.")
ParamsOption = typer.Option(DEFAULT_PARAMS_FILE, "--params", help="path to params.yaml")


def _params(path: Path) -> Params:
    setup_logging()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return load_params(path)
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err


def _run(step, params: Params):
    """Run a step; expected failures (bad data, bad config) print one clear line instead of a traceback."""
    from anipop.schema import SchemaError

    try:
        return step(params)
    except (SchemaError, FileNotFoundError, ValueError, KeyError, OSError) as err:
        logging.getLogger("anipop").debug("step failed", exc_info=True)
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err


@app.command()
def ingest(params: Path = ParamsOption) -> None:
    """Read the configured source into data/raw (anime, characters, images, quarantine)."""
    from anipop.ingest import run_ingest

    _run(run_ingest, _params(params))


@app.command()
def prepare(params: Path = ParamsOption) -> None:
    """Apply the cleaning rules, quarantine rejects, normalise the score, split."""
    from anipop.prepare import run_prepare

    _run(run_prepare, _params(params))


@app.command()
def validate(params: Path = ParamsOption) -> None:
    """Run the Great Expectations suites on raw and prepared tables; fail before any training."""
    from anipop.validate import ValidationFailed, run_validate

    try:
        _run(run_validate, _params(params))
    except ValidationFailed as err:
        typer.echo(f"validation failed: {err}\nData Docs: {err.data_docs}", err=True)
        raise typer.Exit(1) from err


@app.command()
def embed(params: Path = ParamsOption) -> None:
    """Embed every text of the prepared data (cached, resumable)."""
    from anipop.embed import run_embed
    from anipop.encoders import EncoderUnavailable

    try:
        _run(run_embed, _params(params))
    except EncoderUnavailable as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err


@app.command()
def train(params: Path = ParamsOption) -> None:
    """Fit the configured model on the train split."""
    from anipop.train import run_train

    _run(run_train, _params(params))


@app.command()
def evaluate(params: Path = ParamsOption) -> None:
    """Test-split metrics next to the train-mean baseline; logs the run to MLflow."""
    from anipop.evaluate import run_evaluate

    _run(run_evaluate, _params(params))


def main() -> None:  # console-script entry point
    sys.exit(app())


if __name__ == "__main__":
    main()
