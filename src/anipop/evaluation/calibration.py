"""Interval calibration: the split-conformal half-width of each model's prediction interval, from validation.

Why an evaluation job: it scores the trained models on held-out rows, like evaluate does on the test split.
The evaluate step sizes it for every model that can serve pitches and writes reports/calibration.json; the
served predictor (anipop.serving.predict) and the registry only read it, so registering never recomputes a number
the evaluation already fixed, and `dvc repro` tracks it as evaluate's output.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths, IntervalCalibration, ModelBundle
from anipop.core.config import Params
from anipop.core.input_kinds import CHARACTER_KINDS, EMBEDDINGS_INPUT, PITCH_INPUT
from anipop.core.utils import write_json
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.modeling.features import build_features
from anipop.modeling.pitch import reads_characters

log = logging.getLogger(__name__)

MIN_INTERVAL_ROWS = 10  # fewer validation anime with characters than this: their own interval is not sized
CALIBRATED_INPUTS = (EMBEDDINGS_INPUT, PITCH_INPUT)  # the models that score raw pitches with an interval


def _quantile(residuals: np.ndarray, coverage: float) -> float:
    level = min(1.0, math.ceil((len(residuals) + 1) * coverage) / len(residuals))
    return float(np.quantile(residuals, level, method="higher"))


def conformal_half_width(params: Params, bundle: ModelBundle, coverage: float) -> float:
    """Split-conformal half-width (normalised units) from validation residuals: covers `coverage` on average."""
    anime = read_table(PREPARED_ANIME, ArtifactPaths.of(params.paths).prepared_anime)
    val = anime[anime["split"] == "val"]
    if val.empty:
        raise ValueError("the validation split is empty: no residuals to size the prediction interval")
    return _quantile(np.abs(val["score_norm"].to_numpy() - bundle.model.predict(_inputs(params, bundle, anime, val))),
                     coverage)


def _inputs(params: Params, bundle: ModelBundle, anime: pd.DataFrame, val: pd.DataFrame):
    """The validation rows as the model reads them: embedding rows, or a pitch model's inputs (as train fed it)."""
    if bundle.input_type == EMBEDDINGS_INPUT:
        return build_features(params.paths.embeddings_dir, val["anime_id"], bundle.inputs, bundle.aggregation)
    from anipop.modeling.features import model_inputs

    return model_inputs(bundle.input_type, bundle.inputs, val["anime_id"], anime, None, params.paths.embeddings_dir,
                        params.paths.raw_dir, bundle.aggregation, bundle.image_size)


def conformal_half_width_with_characters(params: Params, bundle: ModelBundle, coverage: float) -> float | None:
    """The split-conformal half-width from the validation anime that HAVE characters, or None.

    Why apart: a pitch with characters meets a different model input (and, on MAL, a different population:
    the sample's anime are popular shows), so its interval is sized on residuals of its own kind. None when the
    model reads no character kind or validation has fewer than MIN_INTERVAL_ROWS such anime (the overall
    width is used then).
    """
    if bundle.input_type not in CALIBRATED_INPUTS or not set(bundle.inputs) & set(CHARACTER_KINDS) \
            or not reads_characters(bundle.model):
        return None  # a model that reads no characters (synopsis, metadata; a pitch model whose character
        # correction has weight 0): one interval for all
    paths = ArtifactPaths.of(params.paths)
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    val = anime[(anime["split"] == "val") & anime["anime_id"].isin(set(characters["anime_id"]))]
    if len(val) < MIN_INTERVAL_ROWS:
        log.info("calibration: %d validation anime with characters (< %d); pitches with characters get the "
                 "overall interval", len(val), MIN_INTERVAL_ROWS)
        return None
    return _quantile(np.abs(val["score_norm"].to_numpy() - bundle.model.predict(_inputs(params, bundle, anime, val))),
                     coverage)


def calibrate(params: Params, bundle: ModelBundle) -> IntervalCalibration:
    coverage = params.registry.interval_coverage
    return IntervalCalibration(coverage, conformal_half_width(params, bundle, coverage),
                               conformal_half_width_with_characters(params, bundle, coverage))


def write_calibrations(params: Params, labelled: list[tuple[str, ModelBundle]]) -> dict[str, IntervalCalibration]:
    """Calibrate every model that serves pitches (by run label); write reports/calibration.json."""
    found = {label: calibrate(params, bundle) for label, bundle in labelled if bundle.input_type in CALIBRATED_INPUTS}
    write_json(ArtifactPaths.of(params.paths).calibration, {label: c.to_dict() for label, c in found.items()})
    return found
