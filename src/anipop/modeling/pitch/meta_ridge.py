"""meta_ridge: one ridge over the synopsis TF-IDF, its embedding and the pitch metadata (the linear pitch model)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from anipop.data.franchise_scores import FRANCHISE_FIELD, franchise_features
from anipop.modeling.features import PitchInputs
from anipop.modeling.pitch.encoding import PitchEncoding
from anipop.modeling.track_records import TrackRecords


class MetaRidge:
    """Ridge over [year bins, runtime bins, multi-hot metadata, TF-IDF, weighted embedding, the franchise's earlier
    scores] -> scores in [0, 1]."""

    name: ClassVar[str] = "meta_ridge"

    def __init__(self, kinds: list[str], cfg, seed: int = 0) -> None:
        """cfg: PitchModelParams; seed: unused by a ridge, kept so every pitch model is built alike."""
        self.kinds, self.cfg, self.seed = list(kinds), cfg, seed
        self.encoding = PitchEncoding(self.name, self.kinds, cfg.min_count)

    @property
    def uses_embedding(self) -> bool:
        return self.encoding.uses_embedding

    @property
    def reads_characters(self) -> bool:
        return False  # characters move pitch_gbm's score (its correction), never the linear model's

    @property
    def character_weight(self) -> float:
        return 0.0

    @property
    def vocabulary(self) -> dict[str, list[str]]:
        return self.encoding.vocabulary

    @property
    def records(self) -> TrackRecords | None:
        return None

    @property
    def reads_franchise_scores(self) -> bool:
        return FRANCHISE_FIELD in self.kinds

    def fit(self, inputs: PitchInputs, target: np.ndarray) -> MetaRidge:
        from sklearn.linear_model import Ridge

        from anipop.modeling.text_vectorizer import TfidfVectorizer

        y = np.asarray(target, dtype=np.float64)
        self.encoding.fit(inputs)
        if self.reads_franchise_scores:  # the centre of the earlier-score means the training sequels have
            means = franchise_features(inputs.earlier_scores, len(inputs))[:, 0]
            self.franchise_centre = float(np.nanmean(means)) if np.isfinite(means).any() else 0.0
        # the z-scored 384-d embedding block beside unit-norm TF-IDF rows: a nudge, not a second model
        self.embedding_weight = self.cfg.embedding_weight
        if self.encoding.uses_text:
            self.text_vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=self.cfg.tfidf_min_df,
                                                   max_features=self.cfg.tfidf_max_features)
            self.text_vectorizer.fit(inputs.synopsis)
        self.linear = Ridge(alpha=self.cfg.linear_alpha).fit(self._matrix(inputs), y)
        return self

    def _matrix(self, inputs: PitchInputs):
        from scipy import sparse

        encoding, blocks = self.encoding, []
        if encoding.uses_year:
            blocks.append(sparse.csr_matrix(encoding.year_linear(inputs)))
        if encoding.uses_duration:
            blocks.append(sparse.csr_matrix(encoding.duration_linear(inputs)))
        if encoding.fields:
            blocks.append(encoding.metadata(inputs))
        if encoding.uses_text:
            blocks.append(self.text_vectorizer.transform(inputs.synopsis))
        if encoding.uses_embedding:
            blocks.append(sparse.csr_matrix(encoding.embedding(inputs) * self.embedding_weight))
        if self.reads_franchise_scores:
            blocks.append(sparse.csr_matrix(self._franchise_linear(inputs)))
        return sparse.hstack(blocks).tocsr()

    def _franchise_linear(self, inputs: PitchInputs) -> np.ndarray:
        """[has earlier anime, their mean score (points) from the training sequels' centre, log(1 + count)]; a
        pitch that does not say them reads as a new franchise (a line has no "missing")."""
        features = franchise_features(inputs.earlier_scores, len(inputs))
        has = np.isfinite(features[:, 0])
        return np.column_stack([has.astype(float), np.where(has, features[:, 0] - self.franchise_centre, 0.0),
                                np.nan_to_num(features[:, 1])])

    def raw_scores(self, inputs: PitchInputs) -> np.ndarray:
        """The ridge's scores before clipping (what pitch_stack blends)."""
        return self.linear.predict(self._matrix(inputs))

    def predict(self, inputs: PitchInputs) -> np.ndarray:
        return np.clip(self.raw_scores(inputs), 0.0, 1.0)
