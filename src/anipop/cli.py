"""The `anipop` command: one sub-command per pipeline step, each a thin caller of the step function."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from anipop.core.config import DEFAULT_PARAMS_FILE, ConfigError, Params, load_params
from anipop.core.utils import TRANSIENT_EXIT, is_transient, redact, setup_logging
from anipop.steps import on_params

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help="anipop: predict an anime's MyAnimeList score from its pitch.")
ParamsOption = typer.Option(DEFAULT_PARAMS_FILE, "--params", help="path to params.yaml")


def _params(path: Path) -> Params:
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


def _run(step, params: Params, expected: tuple[type[Exception], ...] = ()):
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


@app.command()
def ingest(params: Path = ParamsOption) -> None:
    """Read the configured source into data/raw (anime, characters, images, quarantine)."""
    from anipop.sources import IngestIncomplete
    from anipop.sources.ingest import run_ingest

    _run(on_params(run_ingest), _params(params), expected=(IngestIncomplete,))


@app.command()
def prepare(params: Path = ParamsOption) -> None:
    """Apply the cleaning rules, quarantine rejects, normalise the score, split."""
    from anipop.data.prepare import run_prepare

    _run(on_params(run_prepare), _params(params))


@app.command()
def validate(params: Path = ParamsOption) -> None:
    """Run the Great Expectations suites on raw and prepared tables; fail before any training."""
    from anipop.data.validate import ValidationFailed, run_validate

    try:
        _run(on_params(run_validate), _params(params))
    except ValidationFailed as err:
        typer.echo(f"{err}\nData Docs: {err.data_docs}", err=True)  # str(err) starts "validation failed:"
        raise typer.Exit(1) from err


@app.command()
def embed(params: Path = ParamsOption) -> None:
    """Embed every text of the prepared data (cached, resumable)."""
    from anipop.embedding.embed import run_embed
    from anipop.encoders.text import EncoderUnavailable

    _run(on_params(run_embed), _params(params), expected=(EncoderUnavailable,))


@app.command()
def train(
    params: Path = ParamsOption,
    ablation: str = typer.Option(None, "--ablation", help="all (the paper's whole ablation grid) or one input "
                                 "set (synopsis, characters, images, all_inputs); overrides train.ablations"),
) -> None:
    """Fit every configured model (train.models) on the train split, early-stopping on validation."""
    from anipop.modeling.train import run_train

    _run(lambda loaded: run_train(loaded, ablation=ablation), _params(params))


@app.command()
def backtest(params: Path = ParamsOption) -> None:
    """Franchise-grouped K-fold CV and the temporal backtest: every model and baseline refitted per fold."""
    from anipop.evaluation.backtest import run_backtest

    _run(run_backtest, _params(params))


@app.command()
def rolling(params: Path = ParamsOption) -> None:
    """Rolling-origin backtest: each year's new franchises, every model refitted on what came before."""
    from anipop.evaluation.backtest import write_rolling

    _run(write_rolling, _params(params))


@app.command("paper-mode")
def paper_mode(params: Path = ParamsOption) -> None:
    """The paper's setup on our data with each of its flaws switched on and off (reports/paper_mode.md)."""
    from anipop.studies.paper_mode import run_paper_mode

    _run(on_params(run_paper_mode), _params(params))


@app.command("field-ablation")
def field_ablation(params: Path = ParamsOption) -> None:
    """Each input set alone (every metadata field, all metadata, the synopsis) on the CV folds, temporal and test."""
    from anipop.studies.field_ablation import run_field_ablation

    _run(run_field_ablation, _params(params))


@app.command()
def report(params: Path = ParamsOption) -> None:
    """reports/results.md: every report's figures in one table next to the baselines (nothing recomputed)."""
    from anipop.studies.results_table import run_report

    _run(on_params(run_report), _params(params))


@app.command()
def tune(params: Path = ParamsOption,
         track: bool = typer.Option(True, "--track/--no-track", help="one MLflow child run per trial"),
         write_params: bool = typer.Option(False, "--write-params",
                                           help="put the winner into --params (train.pitch.blend_linear)")) -> None:
    """Grid for pitch_stack's blend weight on the grouped CV folds of train+val (the test split is not read)."""
    from anipop.studies.tuning import run_tune, write_winner

    loaded = _params(params)
    result = _run(lambda p: run_tune(p, track=track), loaded)
    if write_params:
        best = result["best"]["blend_linear"]
        _run(lambda _: write_winner(params, best), loaded)
        typer.echo(f"{params}: train.pitch.blend_linear = {best:g} (was {result['current']:g})")


@app.command()
def multimodal(params: Path = ParamsOption) -> None:
    """The multimodal ablation on the anime with characters: synopsis vs +descriptions/+portraits/all, grouped CV."""
    from anipop.studies.multimodal_ablation import run_multimodal_ablation

    _run(run_multimodal_ablation, _params(params))


@app.command()
def evaluate(params: Path = ParamsOption) -> None:
    """Test-split metrics next to the train-mean baseline; logs the run to MLflow."""
    from anipop.evaluation.evaluate import run_evaluate

    _run(run_evaluate, _params(params))


@app.command()
def register(params: Path = ParamsOption) -> None:
    """Log the trained model as a pitch-taking MLflow pyfunc; `champion` moves only on improvement."""
    from anipop.registry.register import JudgingFailed, run_register

    _run(run_register, _params(params), expected=(JudgingFailed,))


@app.command()
def drift(params: Path = ParamsOption) -> None:
    """The champion's training anime against the anime new to it (Evidently): reports/drift.json and
    reports/drift/index.html; the retraining flow runs it before deciding to retrain."""
    from anipop.monitoring.check import run_drift

    loaded = _params(params)
    logging.getLogger("anipop.monitoring").setLevel(logging.WARNING)  # the summary below says it once
    result = _run(run_drift, loaded)
    typer.echo(f"drift: {result['drift']}: {'; '.join(result['reasons'])}")


registry_app = typer.Typer(add_completion=False, help="The model registry: champion history.")
app.add_typer(registry_app, name="registry")


@registry_app.command("history")
def registry_history(
    params: Path = ParamsOption,
    at: str = typer.Option(None, "--at", help="YYYY-MM-DD[THH:MM]: which version was champion then (UTC)"),
    as_of: str = typer.Option(None, "--as-of", help="YYYY-MM-DD: which version served data as of that date "
                              "(a replay's steps)"),
    model: str = typer.Option(None, "--model", help="registered model name (default: registry.model_name)"),
) -> None:
    """Every change of the champion (version, previous, time, data as-of and hash, reason), or the one in force."""
    from datetime import date, datetime

    from mlflow import MlflowClient

    from anipop.registry.champion_history import champion_on, read_history, render_history
    from anipop.tracking import tracking_uri, use_tracking_store

    loaded = _params(params)
    name = model or loaded.registry.model_name
    use_tracking_store(loaded)
    client = MlflowClient(tracking_uri=tracking_uri(loaded), registry_uri=tracking_uri(loaded))
    history = _run(lambda _: read_history(client, name), loaded)
    if at is None and as_of is None:
        typer.echo(render_history(name, history))
        return
    try:  # a day means the whole day (its end): what was champion that day
        text = at or as_of
        when = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError as err:
        typer.echo(f"error: {at or as_of!r} is not a date (YYYY-MM-DD)", err=True)
        raise typer.Exit(2) from err
    change = champion_on(history, when, by="time" if at else "as_of")
    if change is None:
        typer.echo(f"{name}: no champion on {at or as_of}")
        raise typer.Exit(1)
    typer.echo(f"{name} v{change.version} was champion on {at or as_of} (since {change.time}, data as of "
               f"{change.as_of or 'all'}: {change.reason})")


@app.command()
def replay(params: Path = ParamsOption,
           report_only: bool = typer.Option(False, "--report-only", help="rewrite reports/replay.md, the plot and "
                                            "the block of docs/retraining.md from reports/replay.json (nothing retrained)")) -> None:
    """Replay the scheduled retraining over history (replay.start..end by replay.every) in a workspace and registry
    of its own; writes reports/replay.{json,md} and reports/plots/replay.png."""
    from anipop.prefect_settings import quiet_local_prefect

    quiet_local_prefect()  # before Prefect is imported (by anipop.orchestration): it reads its settings once
    from anipop.orchestration import load_flow

    loaded = _params(params)
    if report_only:
        from anipop.monitoring.replay_report import replay_paths, run_replay_report

        _run(run_replay_report, loaded)
        typer.echo(f"written: {', '.join(str(p) for p in replay_paths(loaded)[1:])} (and the block of docs/retraining.md, "
                   f"when it has its markers)")
        return
    project = params.resolve().parent
    flow = _run(lambda _: load_flow(project, "replay.py", "replay"), loaded)
    state = flow(project_dir=str(project), return_state=True)
    if not state.is_completed():
        typer.echo(f"error: replay {state.name.lower()}: {state.message}", err=True)
        raise typer.Exit(1)


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

    loaded = _params(params)
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
    model = _run(lambda _: load_model(uri), loaded)
    scores = _run(lambda _: model.predict(pitches), loaded)
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

    loaded = _params(params)
    use_tracking_store(loaded)
    uri = _model_uri(loaded, model_uri)
    copy = Path(tempfile.mkdtemp(prefix="anipop-serve-"))
    try:
        folder = _run(lambda _: checked_download(uri, copy), loaded)
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


@app.command()
def schedule(
    params: Path = ParamsOption,
    cron: str = typer.Option(None, "--cron", help='e.g. "0 3 * * 1"; default: orchestration.schedule.cron'),
) -> None:
    """Serve the scheduled retraining deployment (flows/retrain.py) of the project holding --params; needs a
    Prefect server (PREFECT_API_URL); blocks until Ctrl-C."""
    from anipop.orchestration import load_retrain_flow, prefect_server_problem, serve_retrain

    loaded = _params(params)
    problem = prefect_server_problem()
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    project = params.resolve().parent
    _run(lambda _: serve_retrain(load_retrain_flow(project), project, loaded, cron=cron), loaded)


def main() -> None:  # console-script entry point
    sys.exit(app())


if __name__ == "__main__":
    main()
