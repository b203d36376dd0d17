"""The train step: fit the configured model on the train split and save it with what it was fed."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import joblib
from sklearn.linear_model import Ridge

from anipop.config import Params
from anipop.features import ANIME_KINDS, CHARACTER_KINDS, available_kinds, build_features
from anipop.schema import PREPARED_ANIME, read_table
from anipop.utils import atomic_path, seed_everything, write_json

log = logging.getLogger(__name__)


def run_train(params: Params) -> dict:
    """Fit on train rows, write models_dir/model.joblib and train_report.json; return the report."""
    seed_everything(params.seed)
    anime = read_table(PREPARED_ANIME, Path(params.paths.prepared_dir) / "anime.parquet")
    train_rows = anime[anime["split"] == "train"]
    kinds = available_kinds(params.paths.embeddings_dir, ANIME_KINDS + CHARACTER_KINDS)
    features = build_features(params.paths.embeddings_dir, train_rows["anime_id"], kinds)
    target = train_rows["score_norm"].to_numpy()
    started = time.perf_counter()
    model = Ridge(alpha=params.train.ridge_alpha, random_state=params.seed).fit(features, target)
    seconds = time.perf_counter() - started
    bundle = {"name": params.train.model, "model": model, "inputs": kinds, "train_mean": float(target.mean())}
    models_dir = Path(params.paths.models_dir)
    with atomic_path(models_dir / "model.joblib") as tmp:
        joblib.dump(bundle, tmp)
    report = {"model": params.train.model, "inputs": kinds, "train_rows": len(train_rows),
              "feature_dim": int(features.shape[1]), "fit_seconds": round(seconds, 3),
              "train_mean_score_norm": bundle["train_mean"]}
    write_json(models_dir / "train_report.json", report)
    log.info("train: %s on %d rows, %d features (%s), %.2fs", report["model"], len(train_rows),
             report["feature_dim"], "+".join(kinds), seconds)
    return report
