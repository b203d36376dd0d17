"""pitch_stack: meta_ridge and pitch_gbm blended (weight train.pitch.blend_linear, chosen on grouped CV by
`anipop tune`), with pitch_gbm's character correction."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from anipop.modeling.features import PitchInputs
from anipop.modeling.pitch.meta_ridge import MetaRidge
from anipop.modeling.pitch.pitch_gbm import PitchGBM
from anipop.modeling.track_records import TrackRecords


class PitchStack:
    """blend_linear x meta_ridge + (1 - blend_linear) x pitch_gbm, + the characters' correction -> [0, 1]."""

    name: ClassVar[str] = "pitch_stack"

    def __init__(self, kinds: list[str], cfg, seed: int = 0) -> None:
        self.kinds, self.cfg, self.seed = list(kinds), cfg, seed
        self.linear = MetaRidge(kinds, cfg, seed)
        self.trees = PitchGBM(kinds, cfg, seed)

    @classmethod
    def of(cls, linear: MetaRidge, trees: PitchGBM) -> PitchStack:
        """The stack of a fitted meta_ridge and pitch_gbm of the same kinds, settings and seed.

        Why: the stack's fit is exactly its two parts' fits (each deterministic given the rows, the settings and the
        seed), so train, each CV fold and the backtest reuse the parts they fitted, inner TF-IDF folds and
        trees included, at no cost and with the same predictions.
        """
        if not (isinstance(linear, MetaRidge) and isinstance(trees, PitchGBM)) or linear.kinds != trees.kinds \
                or linear.cfg != trees.cfg or linear.seed != trees.seed:
            raise ValueError("pitch_stack blends a meta_ridge and a pitch_gbm fitted on the same kinds and settings")
        stack = cls.__new__(cls)
        stack.kinds, stack.cfg, stack.seed = list(trees.kinds), trees.cfg, trees.seed
        stack.linear, stack.trees = linear, trees
        return stack

    @property
    def uses_embedding(self) -> bool:
        return self.linear.uses_embedding or self.trees.uses_embedding

    @property
    def reads_characters(self) -> bool:
        return self.trees.reads_characters

    @property
    def character_weight(self) -> float:
        return self.trees.character_weight

    @property
    def vocabulary(self) -> dict[str, list[str]]:
        return self.trees.vocabulary

    @property
    def records(self) -> TrackRecords | None:
        return self.trees.records

    @property
    def reads_franchise_scores(self) -> bool:
        return self.linear.reads_franchise_scores or self.trees.reads_franchise_scores

    def fit(self, inputs: PitchInputs, target: np.ndarray) -> PitchStack:
        self.linear.fit(inputs, target)
        self.trees.fit(inputs, target)
        return self

    def character_correction(self, inputs: PitchInputs) -> np.ndarray:
        return self.trees.character_correction(inputs)

    def predict(self, inputs: PitchInputs) -> np.ndarray:
        w = self.cfg.blend_linear
        scores = w * self.linear.raw_scores(inputs) + (1 - w) * self.trees.raw_scores(inputs)
        return np.clip(scores + self.character_correction(inputs), 0.0, 1.0)
