"""Every file the pipeline declares in dvc.yaml is named once, in ArtifactPaths: the two lists cannot drift apart.

Why: a step writes the file ArtifactPaths names and DVC tracks the file dvc.yaml names; if one is renamed alone,
DVC tracks a file nobody writes (the stage fails, or worse, an old copy stays "up to date").
"""

from __future__ import annotations

import inspect
import re

import yaml
from conftest import PARAMS_FILE, REPO_ROOT

from anipop.core.artifacts import ArtifactPaths
from anipop.core.config import load_params

# files ArtifactPaths names that no stage declares as an output, each with the reason
NOT_STAGE_OUTPUTS = {
    "data_docs": "Great Expectations' HTML renders the run's time: its bytes differ every run",
    "finetune_metrics": "written by benchmarks/finetune_gpu.py outside the pipeline; `anipop report` reads it when present",
    "mlflow_runs": "this machine's MLflow run ids (git-ignored): evaluate writes it for register",
    "registration": "this machine's registry versions (git-ignored)",
    "model_card": "the registered champion's card: this machine's registry (git-ignored)",
    "tuning": "written by `anipop tune`, a study run by hand",
    "plots_dir": "the folder of evaluate's plot files, each declared on its own",
}


def _stage_outputs() -> set[str]:
    folders = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))["paths"]
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    declared = set()
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                name = out if isinstance(out, str) else next(iter(out))
                declared.add(re.sub(r"\$\{paths\.(\w+)\}", lambda m: folders[m.group(1)], name))
    return declared


def _named_files() -> dict[str, str]:
    paths = ArtifactPaths.of(load_params(PARAMS_FILE).paths)
    folders = {str(getattr(paths, field)) for field in ("raw_dir", "prepared_dir", "validation_dir", "embeddings_dir",
                                                        "models_dir", "reports_dir")}
    named = {name: str(getattr(paths, name)) for name, member in inspect.getmembers(ArtifactPaths)
             if isinstance(member, property)}
    return {name: path for name, path in named.items() if path not in folders}


def test_every_declared_output_is_named_in_artifact_paths():
    named = set(_named_files().values())
    folders = {str(folder) for folder in yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))["paths"].values()}
    unnamed = sorted(out for out in _stage_outputs() if out not in named and out not in folders)
    assert not unnamed, f"dvc.yaml declares files ArtifactPaths does not name: {unnamed}"


def test_every_file_artifact_paths_names_is_a_stage_output_or_says_why_not():
    declared = _stage_outputs()
    inside = {name for name, path in _named_files().items()
              if path in declared or any(path.startswith(out.rstrip("/") + "/") for out in declared)}
    undeclared = sorted(set(_named_files()) - inside - set(NOT_STAGE_OUTPUTS))
    assert not undeclared, f"ArtifactPaths names files no dvc.yaml stage declares (add them, or a reason): {undeclared}"
    assert not set(NOT_STAGE_OUTPUTS) & inside, "a file with a reason not to be an output is declared after all"
