"""Models over the whole pitch: synopsis (TF-IDF and its embedding) plus the pitch metadata.

Three models, all fitted by the train step and refitted per fold by the backtest like every other model:
- meta_ridge: one ridge over TF-IDF of the synopsis, the synopsis embedding and the multi-hot metadata (the
  linear model);
- pitch_gbm: gradient boosting over the multi-hot metadata and out-of-fold text predictions (ridge on TF-IDF,
  ridge on the embedding, computed on franchise-grouped inner folds so no row sees a prediction of itself)
  plus the synopsis length: trees find the interactions a linear model cannot (studio x format);
- pitch_stack: a blend of the two (weight train.pitch.blend_linear, chosen on grouped CV by `anipop tune`).

With character kinds (train.pitch.character_feature), pitch_gbm and pitch_stack add a character
correction to their score: a ridge on the main characters' aggregated description embeddings and portrait
descriptors, fitted on the training anime that have characters to what the synopsis does not explain, centred
on those anime, times a weight fitted on its out-of-fold predictions. A pitch without characters gets exactly 0
(the score it had without the feature); a pitch with characters moves only by how its characters compare with
the training anime's. Why not a tree feature with NaN for "no characters": NaN-or-not is itself the presence of
characters, and in the MAL sample only popular shows have them (+1.4 points), an artefact a pitch must not get
(params.yaml train.character_presence); outside the trees, no split can isolate the rows that have characters.

Inputs are a PitchInputs (synopsis texts, their embeddings when the model reads them, parsed metadata), built
by `features.pitch_inputs` for the dataset and by the predictor for a served pitch, so both go through one encoder.
A kind the model was trained on that a pitch lacks is encoded as missing: a synopsis-only pitch is scored.
"""

from __future__ import annotations

import logging

import numpy as np

from anipop.catalog.input_kinds import PITCH_INPUT, TEXT_KIND  # noqa: F401 - these models' input type and text
from anipop.catalog.model_catalog import PITCH_MODELS
from anipop.data.metadata import DURATION_FIELD, METADATA_FIELDS, YEAR_FIELD, MetadataEncoder
from anipop.modeling.features import (  # noqa: F401 - what these models read (built in features, the lower module)
    PITCH_CHARACTER_KINDS,
    PitchInputs,
    pitch_inputs,
    pitch_kinds_available,
)
from anipop.modeling.modality import PresenceNeutral, kind_slices, with_characters
from anipop.modeling.track_records import TrackRecords

log = logging.getLogger(__name__)

STACK = "pitch_stack"
# runtime classes for the linear model (minutes): spots and shorts, half-length, a TV episode, double, a feature
DURATION_BINS = ((0, 8), (8, 16), (16, 35), (35, 70), (70, 100000))
STACK_PARTS = ("meta_ridge", "pitch_gbm")  # pitch_stack blends these two fits (PitchRegressor.blend_of)


def _log_words(texts: list[str]) -> np.ndarray:
    return np.log1p([len(str(t).split()) for t in texts]).reshape(-1, 1)


def _inner_folds(groups: np.ndarray | None, n: int, folds: int, seed: int) -> np.ndarray:
    """Fold of each training row: whole franchises per fold (a seeded permutation of the group ids)."""
    keys = np.arange(n) if groups is None else np.asarray(groups)
    unique = np.unique(keys)
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of_group = dict(zip(unique.tolist(), (order % folds).tolist(), strict=True))
    return np.array([fold_of_group[k] for k in keys.tolist()])


class _TextRidge:
    """Ridge on the synopsis TF-IDF (unigrams, sublinear tf): the strongest plain text model on grouped CV."""

    def __init__(self, max_features: int, alpha: float) -> None:
        self.max_features, self.alpha = max_features, alpha

    def fit(self, texts: list[str], y: np.ndarray) -> "_TextRidge":
        from sklearn.linear_model import Ridge

        from anipop.modeling.text_vectorizer import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=self.max_features)
        self.ridge = Ridge(alpha=self.alpha).fit(self.vectorizer.fit_transform(texts), y)
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.ridge.predict(self.vectorizer.transform(texts))


class _EmbeddingRidge:
    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def fit(self, x: np.ndarray, y: np.ndarray) -> "_EmbeddingRidge":
        from sklearn.linear_model import Ridge

        self.ridge = Ridge(alpha=self.alpha).fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.ridge.predict(np.asarray(x, dtype=np.float32))


class _EmbeddingNeighbours:
    """The mean score of the k training synopses nearest in the embedding (cosine), closer ones weighing more:
    what shows told like this one scored. A new franchise has no name a TF-IDF model memorised, but it has
    neighbours."""

    def __init__(self, k: int) -> None:
        self.k = k

    def fit(self, x: np.ndarray, y: np.ndarray) -> "_EmbeddingNeighbours":
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


class _CharacterRidge:
    """Ridge from the characters' blocks (features.assemble's layout) to a score offset, centred: its mean
    prediction over the anime it was fitted on is 0, so having characters alone moves no score.

    Fitted on anime that have characters only. The blocks are centred on those anime and their presence
    columns zeroed (modality.PresenceNeutral), then z-scored: a modality a pitch lacks (a description without a
    portrait) sits at the mean, not at a zero vector the ridge never met. The target is centred too.
    """

    def __init__(self, slices: list[slice], alpha: float) -> None:
        self.slices, self.alpha = slices, alpha

    def fit(self, x: np.ndarray, target: np.ndarray) -> "_CharacterRidge":
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


class PitchRegressor:
    """One of PITCH_MODELS on the kinds it was given; .predict(PitchInputs) -> normalised scores in [0, 1]."""

    def __init__(self, name: str, kinds: list[str], cfg, seed: int = 0) -> None:
        if name not in PITCH_MODELS:
            raise ValueError(f"unknown pitch model {name!r}; expected one of {PITCH_MODELS}")
        self.name, self.kinds, self.cfg, self.seed = name, list(kinds), cfg, seed
        self.fields = [k for k in self.kinds if k in METADATA_FIELDS]
        self.uses_text = TEXT_KIND in self.kinds
        self.uses_year = YEAR_FIELD in self.kinds
        self.uses_duration = DURATION_FIELD in self.kinds
        self.uses_embedding = False
        self.character_kinds = [k for k in self.kinds if k in PITCH_CHARACTER_KINDS]  # pitch_gbm/stack read them
        self.character_model: _CharacterRidge | None = None  # None: no character correction (off, too few rows)
        self.character_weight = 0.0

    # --- feature blocks -----------------------------------------------------------------------------------
    def _metadata(self, inputs: PitchInputs):
        return self.encoder.transform({f: inputs.values(f) for f in self.fields})

    def _embedding(self, inputs: PitchInputs) -> np.ndarray:
        if inputs.embedding is None:
            raise ValueError(f"{self.name} was trained on the synopsis embedding, but the inputs carry none")
        return (np.asarray(inputs.embedding, dtype=np.float32) - self.emb_mean) / self.emb_scale

    def _year_linear(self, inputs: PitchInputs) -> np.ndarray:
        """The year for a linear model: centred slope, 5-year bins learned on train, and a missing flag."""
        years = inputs.years()
        known = ~np.isnan(years)
        slope = np.where(known, (years - self.year_centre) / 10.0, 0.0)
        bins = np.stack([known & (years >= low) & (years < low + 5) for low in self.year_bins], axis=1)
        return np.column_stack([slope, bins, ~known]).astype(np.float32)

    def _duration_linear(self, inputs: PitchInputs) -> np.ndarray:
        """The runtime for a linear model: log minutes (centred), its bins on the log scale, a missing flag."""
        minutes = inputs.durations()
        known = ~np.isnan(minutes)
        logged = np.where(known, np.log(np.where(known, minutes, 1.0)) - self.duration_centre, 0.0)
        bins = np.stack([known & (minutes >= low) & (minutes < high) for low, high in DURATION_BINS], axis=1)
        return np.column_stack([logged, bins, ~known]).astype(np.float32)

    def _linear_matrix(self, inputs: PitchInputs):
        from scipy import sparse

        blocks = []
        if self.uses_year:
            blocks.append(sparse.csr_matrix(self._year_linear(inputs)))
        if self.uses_duration:
            blocks.append(sparse.csr_matrix(self._duration_linear(inputs)))
        if self.fields:
            blocks.append(self._metadata(inputs))
        if self.uses_text:
            blocks.append(self.text_vectorizer.transform(inputs.synopsis))
        if self.uses_embedding:
            blocks.append(sparse.csr_matrix(self._embedding(inputs) * self.embedding_weight))
        return sparse.hstack(blocks).tocsr()

    def _text_predictions(self, inputs: PitchInputs, models: tuple) -> list[np.ndarray]:
        text_model, emb_model, *neighbours = models
        columns = [text_model.predict(inputs.synopsis)]
        if emb_model is not None:
            columns.append(emb_model.predict(self._embedding(inputs)))
        if neighbours and neighbours[0] is not None:
            columns.append(neighbours[0].predict(inputs.embedding))
        return columns

    def _characters(self, inputs: PitchInputs) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """The character kinds' blocks side by side, which rows have any character, and each kind's width.

        Inputs that carry no character blocks (a caller that builds none) are rows without characters."""
        if not all(kind in inputs.characters for kind in self.character_kinds):
            return np.zeros((len(inputs), 0), np.float32), np.zeros(len(inputs), dtype=bool), {}
        blocks = [np.asarray(inputs.characters[kind], dtype=np.float32) for kind in self.character_kinds]
        dims = {kind: block.shape[1] - 1 for kind, block in zip(self.character_kinds, blocks, strict=True)}
        matrix = np.hstack(blocks)
        return matrix, with_characters(matrix, self.character_kinds, dims), dims

    @property
    def reads_characters(self) -> bool:
        """Whether a pitch's characters can move its score (a correction was fitted with a weight above 0); the
        predictor tells a producer when they cannot, and sizes no separate interval for them."""
        return getattr(self, "character_model", None) is not None and self.character_weight > 0

    def character_correction(self, inputs: PitchInputs) -> np.ndarray:
        """What each row's characters add to its score: weight x centred ridge prediction; exactly 0 for a row
        without characters (and for every row when the model has no character correction)."""
        correction = np.zeros(len(inputs))
        if self.reads_characters:
            matrix, has, _ = self._characters(inputs)
            if has.any():
                correction[has] = self.character_weight * self.character_model.predict(matrix[has])
        return correction

    def _tree_matrix(self, inputs: PitchInputs, text_columns: list[np.ndarray] | None):
        from scipy import sparse

        blocks = []
        if getattr(self, "records", None) is not None:  # NaN (no value, no history) is LightGBM's missing
            blocks.append(sparse.csr_matrix(self.records.features(
                {f: inputs.values(f) for f in self.records.fields}, inputs.years(), inputs.groups)))
        if self.fields:
            blocks.append(self._metadata(inputs))
        if self.uses_year:  # NaN (not given) is LightGBM's missing value
            blocks.append(sparse.csr_matrix(inputs.years().reshape(-1, 1)))
        if self.uses_duration:
            blocks.append(sparse.csr_matrix(inputs.durations().reshape(-1, 1)))
        if self.uses_text:
            blocks += [sparse.csr_matrix(c.reshape(-1, 1)) for c in text_columns]
            blocks.append(sparse.csr_matrix(_log_words(inputs.synopsis)))
        return sparse.hstack(blocks).tocsr().astype(np.float32)

    # --- fitting ------------------------------------------------------------------------------------------
    def fit(self, inputs: PitchInputs, target: np.ndarray) -> "PitchRegressor":
        cfg, y = self.cfg, np.asarray(target, dtype=np.float64)
        if self.fields:
            self.encoder = MetadataEncoder(self.fields, cfg.min_count).fit(
                {f: inputs.values(f) for f in self.fields})
        self.uses_embedding = self.uses_text and inputs.embedding is not None
        if self.uses_year:
            years = inputs.years()
            known = years[~np.isnan(years)]
            self.year_centre = float(np.median(known)) if len(known) else 2000.0
            self.year_bins = list(range(int(known.min()) // 5 * 5, int(known.max()) + 1, 5)) if len(known) else []
        if self.uses_duration:
            minutes = inputs.durations()
            known = minutes[~np.isnan(minutes)]
            self.duration_centre = float(np.median(np.log(known))) if len(known) else 0.0
        if self.uses_embedding:
            emb = np.asarray(inputs.embedding, dtype=np.float32)
            self.emb_mean, self.emb_scale = emb.mean(axis=0), np.where(emb.std(axis=0) < 1e-6, 1.0, emb.std(axis=0))
            self.embedding_weight = 0.05  # z-scored 384-d block beside unit-norm TF-IDF rows: keep it a nudge
        if self.name in ("meta_ridge", "pitch_stack"):
            self._fit_linear(inputs, y)
        if self.name in ("pitch_gbm", "pitch_stack"):
            self._fit_trees(inputs, y)
        return self

    def _fit_linear(self, inputs: PitchInputs, y: np.ndarray) -> None:
        from sklearn.linear_model import Ridge

        from anipop.modeling.text_vectorizer import TfidfVectorizer

        if self.uses_text:
            self.text_vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=self.cfg.tfidf_max_features)
            self.text_vectorizer.fit(inputs.synopsis)
        self.linear = Ridge(alpha=self.cfg.linear_alpha).fit(self._linear_matrix(inputs), y)

    def _fit_text_models(self, inputs: PitchInputs, y: np.ndarray) -> tuple:
        text = _TextRidge(self.cfg.tfidf_max_features, self.cfg.text_alpha).fit(inputs.synopsis, y)
        emb = _EmbeddingRidge(self.cfg.embedding_alpha).fit(self._embedding(inputs), y) \
            if self.uses_embedding else None
        near = _EmbeddingNeighbours(self.cfg.text_neighbours).fit(inputs.embedding, y) \
            if self.uses_embedding and self.cfg.text_neighbours else None
        return text, emb, near

    def _fit_trees(self, inputs: PitchInputs, y: np.ndarray) -> None:
        from lightgbm import LGBMRegressor

        cfg = self.cfg
        oof = None
        folds = _inner_folds(inputs.groups, len(inputs), cfg.stack_folds, self.seed)
        if self.uses_text:  # out-of-fold text predictions for the trees, full-data text models for prediction
            columns = 1 + int(self.uses_embedding) + int(self.uses_embedding and bool(cfg.text_neighbours))
            oof = [np.zeros(len(inputs)) for _ in range(columns)]
            for k in range(cfg.stack_folds):
                fit_rows, held = np.where(folds != k)[0], np.where(folds == k)[0]
                if len(held) == 0 or len(fit_rows) == 0:
                    continue
                models = self._fit_text_models(inputs.take(fit_rows), y[fit_rows])
                for column, values in zip(oof, self._text_predictions(inputs.take(held), models), strict=True):
                    column[held] = values
            self.text_models = self._fit_text_models(inputs, y)
        if self.character_kinds:  # the synopsis's out-of-fold prediction: what the characters need not explain
            self._fit_character_correction(inputs, y - (np.mean(oof, axis=0) if oof else 0.0), folds)
        self.records = None
        record_fields = [f for f in cfg.track_records.fields if f in self.fields] if cfg.track_records.enabled else []
        if record_fields:
            self.records = TrackRecords(record_fields, cfg.track_records.shrink, cfg.track_records.recent_years,
                                        cfg.track_records.relative).fit(
                {f: inputs.values(f) for f in record_fields}, inputs.years(), inputs.groups, y)
        matrix = self._tree_matrix(inputs, oof)
        # LightGBM: bundles the sparse one-hot columns (exclusive feature bundling), 10x faster than dense
        # histogram boosting here; one thread, so a fit is repeatable bit for bit. Averaged over gbm_seeds fits
        # (their row and column samples differ): one seed's draw moves CV Spearman by about a hundredth
        self.forest = [LGBMRegressor(
            learning_rate=cfg.gbm_learning_rate, n_estimators=cfg.gbm_n_estimators, num_leaves=cfg.gbm_num_leaves,
            min_child_samples=cfg.gbm_min_child_samples, reg_lambda=cfg.gbm_l2, colsample_bytree=cfg.gbm_colsample,
            subsample=cfg.gbm_subsample, subsample_freq=1, random_state=self.seed + k, n_jobs=1,
            verbose=-1).fit(matrix, y) for k in range(cfg.gbm_seeds)]

    def _fit_character_correction(self, inputs: PitchInputs, residual: np.ndarray, folds: np.ndarray) -> None:
        """The character ridge (on every training row with characters) and its weight: the least-squares slope,
        in [0, 1], of the rows' residual on the ridge's out-of-fold predictions (the text columns' inner folds),
        both centred per fold over the rows with characters. 0 (no correction) when the characters do not predict
        the residual out of fold, or fewer than 2 x stack_folds training rows have characters.
        """
        self.character_model, self.character_weight = None, 0.0
        matrix, has, dims = self._characters(inputs)
        minimum = 2 * self.cfg.stack_folds
        if has.sum() < minimum:
            log.info("%s: %d training rows have characters (< 2 x stack_folds = %d): no character correction",
                     self.name, int(has.sum()), minimum)
            return
        slices = list(kind_slices(self.character_kinds, dims).values())
        predicted, target = [], []
        for k in range(self.cfg.stack_folds):
            fit_rows, held = np.where(has & (folds != k))[0], np.where(has & (folds == k))[0]
            if len(held) == 0 or len(fit_rows) < 2:
                continue
            ridge = _CharacterRidge(slices, self.cfg.character_alpha).fit(matrix[fit_rows], residual[fit_rows])
            predicted.append(ridge.predict(matrix[held]))
            target.append(residual[held] - residual[fit_rows].mean())  # centred as the ridge's fit rows were
        predicted, target = np.concatenate(predicted), np.concatenate(target)
        power = float(predicted @ predicted)
        self.character_weight = float(np.clip(predicted @ target / power, 0.0, 1.0)) if power > 0 else 0.0
        self.character_model = _CharacterRidge(slices, self.cfg.character_alpha).fit(matrix[has], residual[has])
        log.info("%s: character correction fitted on %d training rows with characters, weight %.3f (out-of-fold "
                 "slope)", self.name, int(has.sum()), self.character_weight)

    @classmethod
    def blend_of(cls, linear: "PitchRegressor", trees: "PitchRegressor") -> "PitchRegressor":
        """pitch_stack from a fitted meta_ridge and pitch_gbm of the same kinds, settings and seed.

        Why: pitch_stack's fit is exactly meta_ridge's linear fit plus pitch_gbm's trees (each deterministic
        given the rows, the settings and the seed), so fitting it again repeats both, inner TF-IDF folds and
        400 trees included. Reusing the two fits gives the same predictions at no cost.
        """
        if (linear.name, trees.name) != ("meta_ridge", "pitch_gbm") or linear.kinds != trees.kinds \
                or linear.cfg != trees.cfg or linear.seed != trees.seed:
            raise ValueError("pitch_stack blends a meta_ridge and a pitch_gbm fitted on the same kinds and settings")
        stack = cls(STACK, trees.kinds, trees.cfg, trees.seed)
        stack.__dict__.update({**trees.__dict__, "name": STACK, "linear": linear.linear})
        if linear.uses_text:
            stack.text_vectorizer = linear.text_vectorizer
        return stack

    # --- prediction ---------------------------------------------------------------------------------------
    def predict(self, inputs: PitchInputs) -> np.ndarray:
        parts = []
        if self.name in ("meta_ridge", "pitch_stack"):
            parts.append(self.linear.predict(self._linear_matrix(inputs)))
        if self.name in ("pitch_gbm", "pitch_stack"):
            text = self._text_predictions(inputs, self.text_models) if self.uses_text else None
            matrix = self._tree_matrix(inputs, text)
            parts.append(np.mean([trees.predict(matrix) for trees in self.forest], axis=0))
        if self.name == "pitch_stack":
            w = self.cfg.blend_linear
            scores = w * parts[0] + (1 - w) * parts[1]
        else:
            scores = parts[0]
        if self.name in ("pitch_gbm", "pitch_stack"):
            scores = scores + self.character_correction(inputs)
        return np.clip(scores, 0.0, 1.0)
