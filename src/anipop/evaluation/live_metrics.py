"""Live metrics: how a served model did on anime whose scores arrived after it was trained.

Why a module of its own: the drift check (is the champion still as good as its test split said?) and the
retraining replay (what did each year's champion deliver on the next year's shows?) score the same way, on MAL's
1-10 scale, so their figures compare: Spearman, R² and MAE in points, each with a bootstrap interval, and paired
differences between two models on the same resamples.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from anipop.core.metrics import metrics_with_intervals_many
from anipop.core.utils import atomic_path

LIVE_METRICS = ("spearman", "r2", "mae")  # on the 1-10 scale: MAE in points


def live_metrics(true_scores: np.ndarray, predicted: dict[str, np.ndarray], samples: int, confidence: float,
                 seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """Each prediction column's LIVE_METRICS as {value, low, high}, all on the same resamples."""
    results = metrics_with_intervals_many(np.asarray(true_scores, float), predicted, 1.0, samples, confidence, seed)
    return {label: {name: values[name] for name in LIVE_METRICS} for label, values in results.items()}


def model_identity(model_uri: str) -> str:
    """The logged model behind a URI: `models:/<name>/<version>` resolves to the version's source, so one model
    registered under several names (the replay's policies) is loaded and scored once."""
    parts = model_uri.removeprefix("models:/").split("/")
    if not model_uri.startswith("models:/") or len(parts) != 2 or not parts[1].isdigit():
        return model_uri
    from mlflow import MlflowClient

    return MlflowClient().get_model_version(parts[0], parts[1]).source or model_uri


@lru_cache(maxsize=16)
def _loaded(identity: str):
    from anipop.serving.model_loading import load_model

    return load_model(identity)


_SCORED: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_SCORED_MAX = 64


def _runtime() -> str:
    """What besides the model decides its scores: the libraries that run it."""
    from importlib.metadata import version

    return ",".join(f"{name}={version(name)}" for name in ("onnxruntime", "torch", "scikit-learn", "lightgbm"))


def served_scores(model_uri: str, pitches: pd.DataFrame, cache_dir: Path | None = None) -> np.ndarray:
    """A registered model's scores (1-10) for raw pitches, through its served interface.

    Each (model, pitches) pair is scored once: in the process, and across processes when `cache_dir` is given
    (a file per pair, keyed by the logged model behind the URI, the pitches' bytes and the runtime's versions).
    Why: the replay's registry, drift check and live judgement ask for the same champion's scores on the same
    anime in different processes and under several registered names; scoring is deterministic, so a stored
    answer is the answer.
    """
    from anipop.evaluation.test_split_scoring import score_pitches

    if pitches.empty:
        return np.zeros(0)
    identity = model_identity(model_uri)
    digest = hashlib.sha256("|".join([identity, _runtime(), pitches.to_json(orient="split", index=False)])
                            .encode()).hexdigest()
    key = (identity, digest)
    if key not in _SCORED:
        stored = Path(cache_dir) / f"{digest}.npy" if cache_dir else None
        if stored is not None and stored.exists():
            scores = np.load(stored)
        else:
            scores = score_pitches(_loaded(identity), pitches)["score"].to_numpy(dtype=float)
            if stored is not None:
                stored.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(stored) as tmp, open(tmp, "wb") as handle:
                    np.save(handle, scores)
        _SCORED[key] = scores
        while len(_SCORED) > _SCORED_MAX:
            _SCORED.popitem(last=False)
    return _SCORED[key].copy()
