"""pitch_gbm: gradient boosting over the pitch metadata, track records and out-of-fold text predictions.

Trees find the interactions a linear model cannot (studio x format). Its columns: each field's track record
before the row's year (track_records), the multi-hot metadata, the planned year and runtime (NaN: not given,
LightGBM's missing value), the synopsis text models' out-of-fold predictions (text_models) and its length, and
the franchise's own record (data.franchise_scores: the mean score and count of its earlier anime).
With character kinds it adds the character correction (characters) to its score.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from anipop.data.franchise_scores import FRANCHISE_FIELD, franchise_features
from anipop.modeling.features import PITCH_CHARACTER_KINDS, PitchInputs
from anipop.modeling.pitch.characters import CharacterCorrection
from anipop.modeling.pitch.encoding import PitchEncoding
from anipop.modeling.pitch.text_models import (
    fit_text_models,
    inner_folds,
    log_words,
    out_of_fold_text_columns,
    text_columns,
)
from anipop.modeling.track_records import TrackRecords


class PitchGBM:
    """LightGBM averaged over cfg.gbm_seeds fits (+ the character correction) -> scores in [0, 1]."""

    name: ClassVar[str] = "pitch_gbm"

    def __init__(self, kinds: list[str], cfg, seed: int = 0) -> None:
        """cfg: PitchModelParams; seed: the inner folds' permutation and the first LightGBM seed."""
        self.kinds, self.cfg, self.seed = list(kinds), cfg, seed
        self.encoding = PitchEncoding(self.name, self.kinds, cfg.min_count)
        character_kinds = [k for k in self.kinds if k in PITCH_CHARACTER_KINDS]
        self.characters = CharacterCorrection(character_kinds, cfg.character_alpha) if character_kinds else None
        self.track_records: TrackRecords | None = None
        self.text_models: tuple | None = None

    @property
    def uses_embedding(self) -> bool:
        return self.encoding.uses_embedding

    @property
    def reads_characters(self) -> bool:
        return self.characters is not None and self.characters.active

    @property
    def character_weight(self) -> float:
        return self.characters.weight if self.characters is not None and self.characters.model is not None else 0.0

    @property
    def vocabulary(self) -> dict[str, list[str]]:
        return self.encoding.vocabulary

    @property
    def records(self) -> TrackRecords | None:
        return self.track_records

    @property
    def reads_franchise_scores(self) -> bool:
        return FRANCHISE_FIELD in self.kinds

    def fit(self, inputs: PitchInputs, target: np.ndarray) -> PitchGBM:
        from lightgbm import LGBMRegressor

        cfg, y = self.cfg, np.asarray(target, dtype=np.float64)
        self.encoding.fit(inputs)
        oof = None
        folds = inner_folds(inputs.groups, len(inputs), cfg.stack_folds, self.seed)
        if self.encoding.uses_text:  # out-of-fold text predictions for the trees, full-data models for prediction
            oof = out_of_fold_text_columns(self.encoding, inputs, y, folds, cfg)
            self.text_models = fit_text_models(self.encoding, inputs, y, cfg)
        if self.characters is not None:  # the synopsis's out-of-fold prediction: what characters need not explain
            self.characters.fit(inputs, y - (np.mean(oof, axis=0) if oof else 0.0), folds, cfg.stack_folds,
                                self.name)
        record_fields = [f for f in cfg.track_records.fields if f in self.encoding.fields] \
            if cfg.track_records.enabled else []
        self.track_records = TrackRecords(
            record_fields, cfg.track_records.shrink, cfg.track_records.recent_years, cfg.track_records.relative,
        ).fit({f: inputs.values(f) for f in record_fields}, inputs.years(), inputs.groups, y) \
            if record_fields else None
        matrix = self._matrix(inputs, oof)
        # LightGBM: bundles the sparse one-hot columns (exclusive feature bundling), 10x faster than dense
        # histogram boosting here; one thread, so a fit is repeatable bit for bit. Averaged over gbm_seeds fits
        # (their row and column samples differ): one seed's draw moves CV Spearman by about a hundredth
        self.forest = [LGBMRegressor(
            learning_rate=cfg.gbm_learning_rate, n_estimators=cfg.gbm_n_estimators, num_leaves=cfg.gbm_num_leaves,
            min_child_samples=cfg.gbm_min_child_samples, reg_lambda=cfg.gbm_l2, colsample_bytree=cfg.gbm_colsample,
            subsample=cfg.gbm_subsample, subsample_freq=1, random_state=self.seed + k, n_jobs=1,
            verbose=-1).fit(matrix, y) for k in range(cfg.gbm_seeds)]
        return self

    def _matrix(self, inputs: PitchInputs, text: list[np.ndarray] | None):
        from scipy import sparse

        encoding, blocks = self.encoding, []
        if self.track_records is not None:  # NaN (no value, no history) is LightGBM's missing value
            blocks.append(sparse.csr_matrix(self.track_records.features(
                {f: inputs.values(f) for f in self.track_records.fields}, inputs.years(), inputs.groups)))
        if encoding.fields:
            blocks.append(encoding.metadata(inputs))
        if encoding.uses_year:
            blocks.append(sparse.csr_matrix(inputs.years().reshape(-1, 1)))
        if encoding.uses_duration:
            blocks.append(sparse.csr_matrix(inputs.durations().reshape(-1, 1)))
        if encoding.uses_text:
            blocks += [sparse.csr_matrix(c.reshape(-1, 1)) for c in text]
            blocks.append(sparse.csr_matrix(log_words(inputs.synopsis)))
        if self.reads_franchise_scores:  # its earlier anime's mean score and log count; NaN: not said (missing)
            blocks.append(sparse.csr_matrix(franchise_features(inputs.earlier_scores, len(inputs))))
        return sparse.hstack(blocks).tocsr().astype(np.float32)

    def raw_scores(self, inputs: PitchInputs) -> np.ndarray:
        """The trees' mean score before the character correction and clipping (what pitch_stack blends)."""
        text = text_columns(self.encoding, inputs, self.text_models) if self.encoding.uses_text else None
        matrix = self._matrix(inputs, text)
        return np.mean([trees.predict(matrix) for trees in self.forest], axis=0)

    def character_correction(self, inputs: PitchInputs) -> np.ndarray:
        """What each row's characters add to its score; exactly 0 without characters or a correction."""
        return self.characters.predict(inputs) if self.characters is not None else np.zeros(len(inputs))

    def predict(self, inputs: PitchInputs) -> np.ndarray:
        return np.clip(self.raw_scores(inputs) + self.character_correction(inputs), 0.0, 1.0)
