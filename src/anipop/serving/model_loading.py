"""Loading a logged or registered anipop model without running anything but anipop's own code.

Why a module of its own: every loader (`anipop predict`, `anipop serve`, the registry's judging, the drift check,
the replay) goes through check_model_code before MLflow reads the model's folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from anipop.core.utils import redact

log = logging.getLogger(__name__)

PICKLE_OPT_IN = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"  # MLflow's own switch; anipop reads only an explicit "true"
CODE_LOADER = "mlflow.pyfunc.loaders.code_model"  # a pyfunc logged from code (what anipop logs)
PICKLE_LOADER = "mlflow.pyfunc.model"  # a pyfunc logged as a cloudpickled object (older anipop)


def pickles_allowed() -> bool:
    """Whether the operator opted in to loading models pickled by an older anipop: MLflow's own switch, set
    explicitly to true (MLflow's default, unset, counts as no)."""
    import os

    return os.environ.get(PICKLE_OPT_IN, "").strip().lower() == "true"


def load_model(model_uri: str):
    """A logged or registered anipop model, loaded without unpickling anything (check_model_code first)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(checked_download(model_uri)))


def checked_download(model_uri: str, destination: Path | None = None) -> Path:
    """The model's files, copied to a local folder (`destination`, or a temporary one) and checked there
    (check_model_code): whoever loads or serves that folder runs what was checked, whatever the registry holds
    by then."""
    from mlflow.artifacts import download_artifacts

    folder = Path(download_artifacts(artifact_uri=model_uri, dst_path=str(destination) if destination else None))
    check_model_code(folder, model_uri)
    return folder


def check_model_code(folder: Path, model_uri: str) -> None:
    """Refuse a model folder that would run anything but anipop's own loading script, before MLflow reads it.

    Why: MLflow loads a pyfunc by running what its MLmodel names: a cloudpickled python_model (code execution
    by whoever wrote the registry), a `code` folder put first on sys.path (which could shadow anipop itself),
    or a script. anipop logs its models from code (anipop.serving.model_code) with data artifacts only; so the
    MLmodel must name MLflow's code loader, no code folder and a script byte-equal to one of anipop's
    (model_code.known_scripts). A model pickled by an older anipop loads only when the operator sets
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true.
    """
    import yaml

    from anipop.serving.model_code import known_scripts

    shown = redact(model_uri)
    try:
        flavor = (yaml.safe_load((folder / "MLmodel").read_text()) or {})["flavors"]["python_function"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        raise ValueError(f"model {shown}: no readable python_function flavour in its MLmodel") from None
    script = flavor.get("model_code_path")
    loader = flavor.get("loader_module")
    if flavor.get("code") or loader != (CODE_LOADER if script else PICKLE_LOADER):
        raise ValueError(f"model {shown}: its MLmodel loads through {loader!r}"
                         f"{' with a code folder on the import path' if flavor.get('code') else ''}; anipop "
                         f"loads only its own pyfuncs, refused without loading it")
    if not script:
        if pickles_allowed():
            log.warning("model %s is a pickled pyfunc; loading it because %s=true", shown, PICKLE_OPT_IN)
            return
        raise ValueError(f"model {shown} is stored as a pickle (python_model.pkl): loading it would run whatever "
                         f"its writer put in it. Register it again with this anipop (`dvc repro register`), "
                         f"or set {PICKLE_OPT_IN}=true if you trust every writer of the registry")
    code = folder / Path(str(script)).name
    if not code.is_file() or code.read_bytes() not in known_scripts():
        raise ValueError(f"model {shown}: its loading script {code.name} is not one of anipop's own "
                         f"(anipop/serving/model_code/); refused without running it")
