"""The character correction of pitch_gbm (and so pitch_stack): what a pitch's main characters add to its score.

A ridge on the main characters' aggregated description embeddings and portrait descriptors, fitted on the
training anime that have characters to what the synopsis does not explain, centred on those anime, times a
weight fitted on its out-of-fold predictions. A pitch without characters gets exactly 0 (the score it had
without the feature); a pitch with characters moves only by how its characters compare with the training
anime's. Why not a tree feature with NaN for "no characters": NaN-or-not is itself the presence of characters,
and in the MAL sample only popular shows have them (+1.4 points), an artefact a pitch must not get (params.yaml
train.character_presence); outside the trees, no split can isolate the rows that have characters.
"""

from __future__ import annotations

import logging

import numpy as np

from anipop.modeling.features import PitchInputs
from anipop.modeling.modality import PresenceNeutral, kind_slices, with_characters

log = logging.getLogger(__name__)


class CharacterRidge:
    """Ridge from the characters' blocks (features.assemble's layout) to a score offset, centred: its mean
    prediction over the anime it was fitted on is 0, so having characters alone moves no score.

    Fitted on anime that have characters only. The blocks are centred on those anime and their presence
    columns zeroed (modality.PresenceNeutral), then z-scored: a modality a pitch lacks (a description without a
    portrait) sits at the mean, not at a zero vector the ridge never met. The target is centred too.
    """

    def __init__(self, slices: list[slice], alpha: float) -> None:
        self.slices, self.alpha = slices, alpha

    def fit(self, x: np.ndarray, target: np.ndarray) -> CharacterRidge:
        from sklearn.linear_model import Ridge

        self.neutral = PresenceNeutral(self.slices).fit(x)
        centred = self.neutral.transform(x)
        scale = centred.std(axis=0)
        self.scale = np.where(scale < 1e-6, 1.0, scale)
        self.ridge = Ridge(alpha=self.alpha).fit(centred / self.scale, target - target.mean())
        self.centre = 0.0
        self.centre = float(self.predict(x).mean())
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.ridge.predict(self.neutral.transform(x) / self.scale) - self.centre


def character_blocks(inputs: PitchInputs, kinds: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The character kinds' blocks side by side, which rows have any character, and each kind's width.

    Inputs that carry no character blocks (a caller that builds none) are rows without characters."""
    if not all(kind in inputs.characters for kind in kinds):
        return np.zeros((len(inputs), 0), np.float32), np.zeros(len(inputs), dtype=bool), {}
    blocks = [np.asarray(inputs.characters[kind], dtype=np.float32) for kind in kinds]
    dims = {kind: block.shape[1] - 1 for kind, block in zip(kinds, blocks, strict=True)}
    matrix = np.hstack(blocks)
    return matrix, with_characters(matrix, kinds, dims), dims


class CharacterCorrection:
    """The fitted ridge and its weight; `model` None (or weight 0) is no correction (too few rows, or the
    characters did not predict the residual out of fold)."""

    def __init__(self, kinds: list[str], alpha: float) -> None:
        self.kinds, self.alpha = list(kinds), alpha
        self.model: CharacterRidge | None = None
        self.weight = 0.0

    @property
    def active(self) -> bool:
        return self.model is not None and self.weight > 0

    def fit(self, inputs: PitchInputs, residual: np.ndarray, folds: np.ndarray, fold_count: int,
            owner: str) -> CharacterCorrection:
        """The character ridge (on every training row with characters) and its weight: the least-squares slope,
        in [0, 1], of the rows' residual on the ridge's out-of-fold predictions (the text columns' inner folds),
        both centred per fold over the rows with characters. 0 (no correction) when the characters do not predict
        the residual out of fold, or fewer than 2 x fold_count training rows have characters.
        """
        self.model, self.weight = None, 0.0
        matrix, has, dims = character_blocks(inputs, self.kinds)
        minimum = 2 * fold_count
        if has.sum() < minimum:
            log.info("%s: %d training rows have characters (< 2 x stack_folds = %d): no character correction",
                     owner, int(has.sum()), minimum)
            return self
        slices = list(kind_slices(self.kinds, dims).values())
        predicted, target = [], []
        for k in range(fold_count):
            fit_rows, held = np.where(has & (folds != k))[0], np.where(has & (folds == k))[0]
            if len(held) == 0 or len(fit_rows) < 2:
                continue
            ridge = CharacterRidge(slices, self.alpha).fit(matrix[fit_rows], residual[fit_rows])
            predicted.append(ridge.predict(matrix[held]))
            target.append(residual[held] - residual[fit_rows].mean())  # centred as the ridge's fit rows were
        predicted, target = np.concatenate(predicted), np.concatenate(target)
        power = float(predicted @ predicted)
        self.weight = float(np.clip(predicted @ target / power, 0.0, 1.0)) if power > 0 else 0.0
        self.model = CharacterRidge(slices, self.alpha).fit(matrix[has], residual[has])
        log.info("%s: character correction fitted on %d training rows with characters, weight %.3f (out-of-fold "
                 "slope)", owner, int(has.sum()), self.weight)
        return self

    def predict(self, inputs: PitchInputs) -> np.ndarray:
        """What each row's characters add: weight x centred ridge prediction; exactly 0 for a row without
        characters (and for every row when there is no correction)."""
        correction = np.zeros(len(inputs))
        if self.active:
            matrix, has, _ = character_blocks(inputs, self.kinds)
            if has.any():
                correction[has] = self.weight * self.model.predict(matrix[has])
        return correction
