"""A whole small pipeline run (ingest -> register) on a learnable MAL-shaped CSV, for registry and serving tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO_ROOT, params_in
from fixtures_mal import learnable_rows, write_mal_csv

from anipop.core.config import Params
from anipop.data.prepare import run_prepare
from anipop.embedding.embed import run_embed
from anipop.evaluation.backtest import run_backtest
from anipop.evaluation.evaluate import run_evaluate
from anipop.modeling.train import run_train
from anipop.registry.register import run_register
from anipop.sources.ingest import run_ingest
from anipop.steps import call_step

PITCH = "A beloved acclaimed masterpiece about a school band and a dragon on a summer island."


def pipeline_params(tmp_path, tracking_uri: str | None = None, characters_dir=None):
    """Params for a fast real run: the default (offline) encoders, ridge only on the main input set (no ablation
    sets: their 16 fits and MLflow children were most of train + evaluate, and the tests sharing this run do not
    read them; tests/integration/test_e2e_pipeline.py and test_mlflow_ui.py run ablations), a sqlite store
    under tmp_path.

    `characters_dir`: a characters folder (e.g. the real sample: its anime 1, 19, 30, 43 and 121 are among the
    learnable rows' ids 1..160, so 17 real characters with portraits join them); None: anime only.
    """
    csv = write_mal_csv(tmp_path / "mal.csv", learnable_rows(160))
    return params_in(
        tmp_path,
        ingest={"local_path": csv, "characters_dir": characters_dir},
        train={"model": "ridge", "models": ("ridge",), "ridge_alpha": 1.0, "ablations": ()},
        evaluate={"bootstrap_samples": 20},
        mlflow={"tracking_uri": tracking_uri or f"sqlite:///{tmp_path / 'mlflow.db'}",
                "artifact_location": str(tmp_path / "mlruns"), "experiment": "anipop-test"},
    )


def run_pipeline(params, backtest: bool = False) -> dict:
    """ingest -> register in this process; with `backtest`, the CV/temporal backtest before evaluate (whose
    MLflow runs then carry the CV figures)."""
    for step in (run_ingest, run_prepare, run_embed, run_train, *([run_backtest] if backtest else []), run_evaluate):
        call_step(step, params)
    return run_register(params)


def write_params(params: Params, path: Path) -> str:
    path.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return str(path)


def dvc_project(tmp_path: Path, params: Params, prepare_suffix: str = "") -> Path:
    """A fresh git + DVC project in tmp_path running this checkout's dvc.yaml on `params` (paths relative)."""
    project = tmp_path
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    if prepare_suffix:
        stages["stages"]["prepare"]["cmd"] += f" && {prepare_suffix}"
    if params.ingest.characters_dir is None:  # no characters sample: its dvc.yaml dep goes (as params.yaml says)
        stages["stages"]["ingest"]["deps"].remove("${ingest.characters_dir}")
    (project / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False), encoding="utf-8")
    shutil.copytree(REPO_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    relative = {name: Path(value).relative_to(project) if Path(value).is_relative_to(project) else Path(value)
                for name, value in params.paths.model_dump().items()}  # a shared folder elsewhere stays absolute
    params = params.model_copy(update={"paths": params.paths.model_copy(update=relative)})
    write_params(params, project / "params.yaml")
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=project, check=True, capture_output=True)
    return project


def register_killed_after_moving_champion(params_file: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`anipop register --params params_file` in a process SIGKILLed right after it moves `champion` (the champion
    history is written right after the alias moves): no handler runs, the new version stays pending."""
    script = ("import os, signal, sys\nimport anipop.registry.register as registry\n"
              "def die(*args, **kwargs):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
              "registry.record_change = die\nfrom anipop.cli import app\n"
              f"sys.argv = ['anipop', 'register', '--params', {str(params_file)!r}]\napp()\n")
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
