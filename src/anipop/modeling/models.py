"""The models anipop trains: two MLPs, the paper's TF-IDF + pixels benchmark, ridge, and two baselines.

The MLPs (mlp_wide, mlp_small; once called dnn_full / dnn_reduced) have our own widths, not the paper's:
the authors' exact head is paper_head.py.

The baselines (train mean; a line on the synopsis's log word count) are fitted beside every model, on the
same rows, and sit in every table: a model counts only where it beats both.

Every model is a small picklable object whose `.predict(inputs)` returns normalised scores in [0, 1], so the
evaluate step, the CLI and the MLflow pyfunc call them the same way. The network is stored as plain data
(layer sizes + numpy weights + the feature standardisation) and rebuilt on first use from score_network.py,
so loading a bundle never needs the training code, and only a network needs torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from anipop.core.model_catalog import (  # noqa: F401 - the names of the models implemented here
    BASELINE,
    BASELINES,
    BENCHMARK,
    LENGTH_BASELINE,
    NETWORK_MODELS,
)

if TYPE_CHECKING:  # torch is imported where a network is built or run: a ridge-only stage never pays for it
    from anipop.modeling.score_network import ScoreNetwork


class RidgeRegressor:
    """Ridge regression on the embeddings: the strong classical baseline (clipped to the score range)."""

    def __init__(self, alpha: float, seed: int = 0) -> None:
        from sklearn.linear_model import Ridge

        self.estimator = Ridge(alpha=alpha, random_state=seed)

    def fit(self, features: np.ndarray, target: np.ndarray) -> "RidgeRegressor":
        self.estimator.fit(features, target)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.clip(self.estimator.predict(np.asarray(features, dtype=np.float32)), 0.0, 1.0)


class NetworkRegressor:
    """A trained ScoreNetwork as plain data: its shape, numpy weights and the feature standardisation.

    Why not pickle the nn.Module: plain arrays load under any torch version and carry no training state.
    """

    def __init__(self, input_dim: int, hidden: tuple[int, ...], dropout: float, weights: dict[str, np.ndarray],
                 feature_mean: np.ndarray, feature_scale: np.ndarray) -> None:
        self.input_dim = int(input_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.dropout = float(dropout)
        self.weights = weights
        self.feature_mean = np.asarray(feature_mean, dtype=np.float32)
        self.feature_scale = np.asarray(feature_scale, dtype=np.float32)
        self._module: ScoreNetwork | None = None

    @classmethod
    def from_module(cls, module: ScoreNetwork, input_dim: int, hidden: tuple[int, ...], dropout: float,
                    feature_mean: np.ndarray, feature_scale: np.ndarray) -> "NetworkRegressor":
        weights = {name: tensor.detach().cpu().numpy().copy() for name, tensor in module.state_dict().items()}
        return cls(input_dim, hidden, dropout, weights, feature_mean, feature_scale)

    def standardise(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.input_dim:
            raise ValueError(f"the network expects features of shape (n, {self.input_dim}), got {features.shape}")
        return (features - self.feature_mean) / self.feature_scale

    def module(self) -> ScoreNetwork:
        """The torch network in eval mode, rebuilt from the stored weights on first use (CPU)."""
        if self._module is None:
            import torch

            from anipop.modeling.score_network import ScoreNetwork

            module = ScoreNetwork(self.input_dim, self.hidden, self.dropout)
            module.load_state_dict({name: torch.from_numpy(array) for name, array in self.weights.items()})
            self._module = module.eval()
        return self._module

    def predict(self, features: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            scores = self.module()(torch.from_numpy(self.standardise(features)))
        return scores.numpy().astype(np.float64)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_module"] = None  # rebuilt from `weights` after loading
        return state


class TfidfPixelBenchmark:
    """The paper's benchmark: TF-IDF of each text kind plus raw portrait pixels, regressed linearly.

    Its inputs are the raw dict from features.raw_inputs (kind -> texts or pixel rows), not embeddings.
    """

    def __init__(self, kinds: list[str], max_features: int, alpha: float, seed: int = 0) -> None:
        self.kinds = list(kinds)
        self.max_features = max_features
        self.alpha = alpha
        self.seed = seed
        self.vectorizers: dict = {}
        self.estimator = None

    def _matrix(self, inputs: dict[str, object], fit: bool):
        from scipy import sparse

        from anipop.modeling.text_vectorizer import TfidfVectorizer

        blocks = []
        for kind in self.kinds:
            if kind not in inputs:
                raise KeyError(f"the benchmark was trained on {self.kinds} but got no {kind!r} input")
            value = inputs[kind]
            if isinstance(value, np.ndarray):  # pixels: already numbers in [0, 1]
                blocks.append(sparse.csr_matrix(value.astype(np.float32)))
                continue
            if fit:
                self.vectorizers[kind] = TfidfVectorizer(max_features=self.max_features, sublinear_tf=True,
                                                         dtype=np.float32)
                blocks.append(self.vectorizers[kind].fit_transform(value))
            else:
                blocks.append(self.vectorizers[kind].transform(value))
        return sparse.hstack(blocks, format="csr")

    def fit(self, inputs: dict[str, object], target: np.ndarray) -> "TfidfPixelBenchmark":
        from sklearn.linear_model import Ridge

        self.estimator = Ridge(alpha=self.alpha, random_state=self.seed).fit(self._matrix(inputs, fit=True), target)
        return self

    def predict(self, inputs: dict[str, object]) -> np.ndarray:
        if self.estimator is None:
            raise RuntimeError("the benchmark is not fitted")
        return np.clip(self.estimator.predict(self._matrix(inputs, fit=False)), 0.0, 1.0)


class MeanBaseline:
    """Predicts the train mean for every anime: what a model must beat to carry any information."""

    def __init__(self) -> None:
        self.mean: float | None = None

    def fit(self, inputs: dict[str, object], target: np.ndarray) -> "MeanBaseline":
        self.mean = float(np.mean(target))
        return self

    def predict(self, inputs: dict[str, object]) -> np.ndarray:
        return np.full(len(inputs["synopsis"]), self.mean, dtype=np.float64)


def log_word_counts(texts) -> np.ndarray:
    """log(1 + words) of each text, as a column: the length baseline's only feature."""
    return np.log1p([len(str(text).split()) for text in texts]).reshape(-1, 1)


class LengthBaseline:
    """A line on log(1 + synopsis words), fitted on train: longer synopses belong to better-known shows.

    Why it is a baseline: it needs no understanding of the story, so a model that does not beat it has learned
    nothing a word count would not tell.
    """

    def __init__(self) -> None:
        from sklearn.linear_model import LinearRegression

        self.estimator = LinearRegression()

    def fit(self, inputs: dict[str, object], target: np.ndarray) -> "LengthBaseline":
        self.estimator.fit(log_word_counts(inputs["synopsis"]), target)
        return self

    def predict(self, inputs: dict[str, object]) -> np.ndarray:
        return np.clip(self.estimator.predict(log_word_counts(inputs["synopsis"])), 0.0, 1.0)


def baseline_model(name: str):
    """A fresh, unfitted baseline by name."""
    return {BASELINE: MeanBaseline, LENGTH_BASELINE: LengthBaseline}[name]()
