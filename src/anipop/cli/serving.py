"""Scoring pitches and serving the champion: `anipop predict` and `anipop serve`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from anipop.cli.running import ParamsOption, params_from, run_step
from anipop.core.config import Params
from anipop.core.utils import redact

app = typer.Typer()


def _with_pitch_field_options(command):
    """`command` with one --<field> option per pitch field of the registry (core.input_kinds.PITCH_FIELD_HELP),
    handed to it as `metadata` (the fields given): a field added to the registry is an option here, unwritten."""
    import functools
    import inspect

    from anipop.core.input_kinds import PITCH_FIELD_HELP

    signature = inspect.signature(command)
    options = [inspect.Parameter(f"field_{name}", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                                 default=typer.Option(None, f"--{name}", help=text))
               for name, text in PITCH_FIELD_HELP.items()]
    kept = [parameter for parameter in signature.parameters.values() if parameter.name != "metadata"]

    @functools.wraps(command)
    def with_options(**kwargs):
        given = {name: kwargs.pop(f"field_{name}") for name in PITCH_FIELD_HELP}
        return command(**kwargs, metadata={name: value for name, value in given.items() if value is not None})

    with_options.__signature__ = signature.replace(parameters=[*kept, *options])
    return with_options


@app.command()
@_with_pitch_field_options
def predict(
    synopsis: str = typer.Option(None, "--synopsis", help="the pitch's synopsis"),
    character: list[str] = typer.Option(None, "--character", help="NAME::DESCRIPTION[::IMAGE_FILE], repeatable"),
    file: Path = typer.Option(None, "--file", help="UTF-8 CSV of pitches: synopsis[, characters as JSON; a "
                              "character's image as base64 / data URI, or its file as image_path (CLI only)]"),
    model_uri: str = typer.Option(None, "--model-uri", help="default: models:/<registry.model_name>@champion"),
    params: Path = ParamsOption,
    metadata: dict[str, str] | None = None,  # the --<field> options: _with_pitch_field_options
) -> None:
    """Score a pitch (or a CSV of pitches) with the champion model: score, interval, and the baseline."""
    import json

    import pandas as pd

    from anipop.serving.model_loading import load_model
    from anipop.serving.pitch import (
        PitchError,
        character_argument,
        inline_image_files,
        parse_pitches,
        read_pitch_file,
    )
    from anipop.serving.predict import configured_limits
    from anipop.tracking import use_tracking_store

    loaded = params_from(params)
    try:
        if (synopsis is None) == (file is None):
            raise PitchError("give either --synopsis (with optional --character) or --file")
        if file is not None:
            pitches = inline_image_files(read_pitch_file(file), base=file.parent)
        else:
            characters = [character_argument(value) for value in character or []]
            fields = {name: [value] for name, value in (metadata or {}).items()}
            pitches = inline_image_files(pd.DataFrame({"synopsis": [synopsis], "characters": [json.dumps(characters)],
                                                       **fields}), base=Path.cwd())
        # fail early, on the limits params.yaml configures (the served model enforces the ones it was logged with)
        parsed = parse_pitches(pitches, configured_limits(loaded))
    except (PitchError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    use_tracking_store(loaded)
    logging.getLogger("anipop.encoders").setLevel(logging.WARNING)  # the encoder's load line: noise beside a score
    uri = _model_uri(loaded, model_uri)
    model = run_step(lambda _: load_model(uri), loaded)
    scores = run_step(lambda _: model.predict(pitches), loaded)
    typer.echo(f"model: {uri}")
    notes = scores.pop("notes").fillna("") if "notes" in scores else None
    if notes is None:  # a model logged before the notes column: one line for all pitches
        predictor = getattr(_python_model(model), "predictor", None)
        ignored = predictor.ignored_inputs(parsed) if hasattr(predictor, "ignored_inputs") else None
        notes = pd.Series([ignored or ""] * len(scores))
    if notes.nunique() == 1 and notes.iloc[0]:
        typer.echo(f"note: {notes.iloc[0]}")
    else:
        for row, note in enumerate(notes):
            if note:
                typer.echo(f"note (row {row}): {note}")
    scores.insert(0, "row", range(len(scores)))  # the row numbers errors name: the file's data rows from 0
    typer.echo(scores.to_string(index=False))


def _model_uri(params: Params, given: str | None) -> str:
    """The model `--model-uri` names, else the registry's champion."""
    from anipop.registry.register import CHAMPION

    return given or f"models:/{params.registry.model_name}@{CHAMPION}"


def _python_model(model):
    """The PythonModel inside a loaded pyfunc, or None for another flavour."""
    try:
        return model.unwrap_python_model()
    except Exception:  # noqa: BLE001 - not a python_model pyfunc: nothing to inspect
        return None


@app.command()
def serve(
    model_uri: str = typer.Option(None, "--model-uri", help="default: models:/<registry.model_name>@champion"),
    host: str = typer.Option("127.0.0.1", "-h", "--host", help="the address to listen on; keep 127.0.0.1 behind a proxy"),
    port: int = typer.Option(5001, "-p", "--port"),
    workers: int = typer.Option(1, "-w", "--workers", help="scoring processes (each loads the model)"),
    params: Path = ParamsOption,
) -> None:
    """Serve a registered model over REST (`mlflow models serve`) from a local copy checked first: the copy's
    loading script must be anipop's own (serving.model_loading.check_model_code), and MLflow's pickle switch is
    off. The copy is removed when the server stops."""
    import shutil
    import tempfile

    from anipop.serving.model_loading import PICKLE_OPT_IN, checked_download
    from anipop.tracking import use_tracking_store

    loaded = params_from(params)
    use_tracking_store(loaded)
    uri = _model_uri(loaded, model_uri)
    copy = Path(tempfile.mkdtemp(prefix="anipop-serve-"))
    try:
        folder = run_step(lambda _: checked_download(uri, copy), loaded)
    except BaseException:  # refused or unreachable: no half-downloaded model left behind
        shutil.rmtree(copy, ignore_errors=True)
        raise
    typer.echo(f"serving {redact(uri)} from the checked copy {folder}", err=True)
    bin_dir = str(Path(sys.executable).parent)  # mlflow and the uvicorn it starts: this environment's
    env = {**os.environ, PICKLE_OPT_IN: "false", "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(Path(bin_dir) / "mlflow"), "models", "serve", "-m", str(folder), "--env-manager", "local",
               "-h", host, "-p", str(port), "-w", str(workers)]
    try:
        code = _run_until_stopped(command, env)
    finally:  # however the server ends (Ctrl-C, SIGTERM, a crash), its copy of the model goes with it
        shutil.rmtree(copy, ignore_errors=True)
    raise typer.Exit(code)


def _run_until_stopped(command: list[str], env: dict[str, str]) -> int:
    """Run the server as a child and pass it the signals this process gets (SIGTERM, SIGHUP, Ctrl-C), so that
    the caller outlives it and can clean up; returns the server's exit status (128 + N when signal N ended it,
    as a shell reports it)."""
    import signal
    import subprocess

    server = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: object) -> None:
        if server.poll() is None:
            server.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                code = server.wait()
                return code if code >= 0 else 128 - code
            except KeyboardInterrupt:  # Ctrl-C reached the whole terminal group; a `kill -INT` only this process
                forward(signal.SIGINT, None)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
