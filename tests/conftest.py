"""Shared test helpers: a Params object whose every path points into the test's own tmp folder."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest

from anipop.core.config import Params, load_params

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO_ROOT / "params.yaml"


@cache
def repo_params() -> Params:
    """The repo's params.yaml, read and validated once per test process (helpers copy or dump it; none changes it)."""
    return load_params(PARAMS_FILE)


REAL_DATA = REPO_ROOT / repo_params().ingest.local_path
# the real main-characters sample (characters.csv.gz + portraits/); tests opt in to it: params_in leaves it out
CHARACTERS_SAMPLE = REPO_ROOT / (repo_params().ingest.characters_dir or "missing-characters-sample")


def knobs(section: str, **update):
    """A section of the repo's params.yaml (dotted, e.g. "embed.image"), validated with `update`: params.yaml is the
    only place knobs have values, so a test that needs one section starts from it and says what it changes."""
    current = repo_params()
    for name in section.split("."):
        current = getattr(current, name)
    return type(current).model_validate({**current.model_dump(), **update})


def request_limits():
    """The request limits params.yaml sets (serving + prepare.max_synopsis_chars), as a logged model saves them."""
    from anipop.serving.predict import configured_limits

    return configured_limits(repo_params())


# fixtures shared by several test folders, as plugins: a test names them as arguments, nothing imports them
pytest_plugins = ["fixtures_jikan"]

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def shared_onnx_dir() -> Path:
    """Where every test workspace finds the text encoder's ONNX graph: the folder a served model without a shipped
    graph builds it in (serving.predict.graph_cache). Why shared: a graph is keyed by its weights and tool versions
    and built atomically (encoders.onnx_text.build_onnx), so one build serves every workspace; each one's own
    folder cost ~7 s of CPU a workspace. The build itself is tested on its own folders (tests/encoders)."""
    from anipop.serving.predict import graph_cache

    return graph_cache()


def workspace_params() -> dict:
    """The repo's params.yaml as a dict, for a test's own DVC project (its dvc.yaml reads the file as written):
    the caller changes what it needs; the ONNX graphs are in the shared folder (shared_onnx_dir); fits in each
    stage's own process, as params_in does (see there); synopses truncated at 64 tokens instead of 256 (the
    same encoder and code path: the real-data slices' ONNX encoding, a large part of the replay test's CPU,
    shrinks with the sequence; truncation itself is tested in tests/encoders)."""
    import yaml

    params = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    params["paths"]["onnx_dir"] = str(shared_onnx_dir())
    params["train"]["workers"] = params["evaluate"]["workers"] = 1
    params["embed"]["profiles"]["default"]["text"]["max_length"] = 64
    return params


def params_in(tmp_path: Path, **sections: dict) -> Params:
    """The repo's params.yaml with paths moved under tmp_path and chosen sections updated.

    `sections` maps a top-level key to a dict of field updates, e.g. train={"ridge_alpha": 1.0}.
    """
    base = repo_params()
    # anime only unless a test names a characters folder (ingest={"characters_dir": ...}): the fixtures' ids
    # 1..N are real MAL ids, which would otherwise pull in the real sample's characters
    base = base.model_copy(update={"ingest": base.ingest.model_copy(update={"characters_dir": None})})
    # fits in this process: tiny data, and the suite already runs a test file per core (a test names workers to
    # check the parallel path: tests/modeling/test_parallel_fits.py)
    base = base.model_copy(update={"train": base.train.model_copy(update={"workers": 1}),
                                   "evaluate": base.evaluate.model_copy(update={"workers": 1})})
    paths = {name: tmp_path / Path(value) for name, value in base.paths.model_dump().items()}
    paths["onnx_dir"] = shared_onnx_dir()
    updates: dict[str, object] = {"paths": base.paths.model_copy(update=paths)}
    for key, fields in sections.items():
        current = getattr(base, key)
        updates[key] = current.model_copy(update=fields) if hasattr(current, "model_copy") else fields
    updated = base.model_copy(update=updates)
    return Params.model_validate(updated.model_dump())  # re-validate so a bad update fails loudly


@pytest.fixture
def tmp_params(tmp_path: Path) -> Params:
    return params_in(tmp_path)


@pytest.fixture(autouse=True)
def mlflow_store_variables_left_as_found():
    """Every test leaves MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI as it found them.

    Why: mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, and anipop reads that variable as the user's
    choice of store (tracking.tracking_uri). A test that pointed MLflow somewhere and put the URI "back" left
    the variable behind, and every later test in its worker registered there (seen: the registry tests, run
    after the replay's, wrote into the checkout's own mlflow.db and failed).
    """
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = {name: os.environ.get(name) for name in names}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# The files that run whole pipelines or start servers, longest first (their times in `--durations`). `make test`
# spreads files over two workers (pytest-xdist, --dist loadfile, --no-loadscope-reorder: xdist would otherwise
# start the files with the most tests first, and the replay, 4 tests and 5 minutes, among the last); starting
# these first keeps one worker from running alone at the end (back to back on one clone: 722.5 s -> 693.0 s).
LONGEST_FIRST = ("test_replay.py", "test_faults.py", "test_flows.py", "test_e2e_pipeline.py", "test_mlflow_servers.py",
                 "test_team_server.py", "test_prefect_server.py", "test_readme_commands.py", "test_mlflow_ui.py")


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable: file order kept otherwise
