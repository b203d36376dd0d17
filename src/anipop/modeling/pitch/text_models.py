"""The synopsis as columns for the trees: small text models whose out-of-fold predictions pitch_gbm reads.

Each is fitted on franchise-grouped inner folds (inner_folds) for the training rows' columns, so no row sees a
prediction of itself, and once on every training row for the pitches it scores.
"""

from __future__ import annotations

import numpy as np

from anipop.modeling.features import PitchInputs
from anipop.modeling.pitch.encoding import PitchEncoding


def log_words(texts: list[str]) -> np.ndarray:
    """The synopsis length as log(1 + words), one column."""
    return np.log1p([len(str(t).split()) for t in texts]).reshape(-1, 1)


def inner_folds(groups: np.ndarray | None, n: int, folds: int, seed: int) -> np.ndarray:
    """Fold of each training row: whole franchises per fold (a seeded permutation of the group ids)."""
    keys = np.arange(n) if groups is None else np.asarray(groups)
    unique = np.unique(keys)
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of_group = dict(zip(unique.tolist(), (order % folds).tolist(), strict=True))
    return np.array([fold_of_group[k] for k in keys.tolist()])


class TextRidge:
    """Ridge on the synopsis TF-IDF (unigrams, sublinear tf): the strongest plain text model on grouped CV."""

    def __init__(self, max_features: int, alpha: float, min_df: int) -> None:
        self.max_features, self.alpha, self.min_df = max_features, alpha, min_df

    def fit(self, texts: list[str], y: np.ndarray) -> TextRidge:
        from sklearn.linear_model import Ridge

        from anipop.modeling.text_vectorizer import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=self.min_df, max_features=self.max_features)
        self.ridge = Ridge(alpha=self.alpha).fit(self.vectorizer.fit_transform(texts), y)
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.ridge.predict(self.vectorizer.transform(texts))


class EmbeddingRidge:
    """Ridge on the standardised synopsis embedding."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def fit(self, x: np.ndarray, y: np.ndarray) -> EmbeddingRidge:
        from sklearn.linear_model import Ridge

        self.ridge = Ridge(alpha=self.alpha).fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.ridge.predict(np.asarray(x, dtype=np.float32))


class EmbeddingNeighbours:
    """The mean score of the k training synopses nearest in the embedding (cosine), closer ones weighing more:
    what shows told like this one scored. A new franchise has no name a TF-IDF model memorised, but it has
    neighbours."""

    def __init__(self, k: int) -> None:
        self.k = k

    def fit(self, x: np.ndarray, y: np.ndarray) -> EmbeddingNeighbours:
        self.x = self._unit(x)
        self.y = np.asarray(y, dtype=np.float64)
        return self

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def predict(self, x: np.ndarray) -> np.ndarray:
        k = min(self.k, len(self.y))
        out = np.empty(len(x))
        query = self._unit(x)
        for start in range(0, len(query), 512):  # a block at a time: bounded memory whatever the row count
            similarity = query[start:start + 512] @ self.x.T
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            weights = np.clip(np.take_along_axis(similarity, nearest, axis=1), 1e-6, None)
            out[start:start + 512] = (weights * self.y[nearest]).sum(axis=1) / weights.sum(axis=1)
        return out


def fit_text_models(encoding: PitchEncoding, inputs: PitchInputs, y: np.ndarray, cfg) -> tuple:
    """(TF-IDF ridge, embedding ridge or None, neighbours or None) fitted on `inputs`; cfg: PitchModelParams."""
    text = TextRidge(cfg.tfidf_max_features, cfg.text_alpha, cfg.tfidf_min_df).fit(inputs.synopsis, y)
    emb = EmbeddingRidge(cfg.embedding_alpha).fit(encoding.embedding(inputs), y) if encoding.uses_embedding else None
    near = EmbeddingNeighbours(cfg.text_neighbours).fit(inputs.embedding, y) \
        if encoding.uses_embedding and cfg.text_neighbours else None
    return text, emb, near


def text_columns(encoding: PitchEncoding, inputs: PitchInputs, models: tuple) -> list[np.ndarray]:
    """Each fitted text model's predictions for `inputs` (a model saved without neighbours has a 2-tuple)."""
    text_model, emb_model, *neighbours = models
    columns = [text_model.predict(inputs.synopsis)]
    if emb_model is not None:
        columns.append(emb_model.predict(encoding.embedding(inputs)))
    if neighbours and neighbours[0] is not None:
        columns.append(neighbours[0].predict(inputs.embedding))
    return columns


def out_of_fold_text_columns(encoding: PitchEncoding, inputs: PitchInputs, y: np.ndarray, folds: np.ndarray,
                             cfg) -> list[np.ndarray]:
    """The text columns of the training rows, each row's from text models fitted without its inner fold."""
    count = 1 + int(encoding.uses_embedding) + int(encoding.uses_embedding and bool(cfg.text_neighbours))
    columns = [np.zeros(len(inputs)) for _ in range(count)]
    for k in range(cfg.stack_folds):
        fit_rows, held = np.where(folds != k)[0], np.where(folds == k)[0]
        if len(held) == 0 or len(fit_rows) == 0:
            continue
        models = fit_text_models(encoding, inputs.take(fit_rows), y[fit_rows], cfg)
        for column, values in zip(columns, text_columns(encoding, inputs.take(held), models), strict=True):
            column[held] = values
    return columns
