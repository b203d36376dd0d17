"""Typed loader of params.yaml: the only module that reads it.

Every knob lives in params.yaml (DVC tracks it per stage); this module turns it into pydantic models so a
typo or a wrong type fails at start-up with the key's full path, not three stages later.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """params.yaml is missing, unreadable, or has unknown or mistyped keys."""


class _Strict(BaseModel):
    # extra="forbid": an unknown key is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(_Strict):
    raw_dir: Path
    prepared_dir: Path
    validation_dir: Path
    embeddings_dir: Path
    embedding_cache_dir: Path
    models_dir: Path
    reports_dir: Path


class JikanParams(_Strict):
    """The `jikan` source's knobs; the anime count is ingest.limit, shared with `local`."""

    base_url: str = "https://api.jikan.moe/v4"
    start_date: date | None = None
    end_date: date | None = None
    types: tuple[Literal["tv", "movie", "ova", "special", "ona", "music", "cm", "pv", "tv_special"], ...] = ()
    order_by: Literal[
        "mal_id", "title", "start_date", "end_date", "episodes", "score", "scored_by", "rank", "popularity",
        "members", "favorites",
    ] = "members"
    sort: Literal["asc", "desc"] = "desc"
    max_retries: int = Field(default=5, ge=1)
    timeout_s: float = Field(default=30.0, gt=0)
    requests_per_second: int = Field(default=3, ge=1)
    requests_per_minute: int = Field(default=60, ge=1)


class IngestParams(_Strict):
    source: Literal["local", "jikan"] = "local"
    local_path: Path
    limit: int | None = Field(default=None, ge=1)
    jikan: JikanParams = JikanParams()


class SplitRatios(_Strict):
    train: float = Field(gt=0, lt=1)
    val: float = Field(ge=0, lt=1)
    test: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "SplitRatios":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1, got {total:.4f}")
        return self


class PrepareParams(_Strict):
    drop_unscored: bool = True
    min_synopsis_words: int = Field(default=20, ge=0)
    drop_characters_without_description: bool = True
    drop_characters_without_portrait: bool = True
    drop_anime_without_main_character: bool = True
    split: SplitRatios


class TextEncoderParams(_Strict):
    model: str
    pooling: Literal["mean", "last"] = "mean"
    max_length: int = Field(default=256, ge=8)


class EmbedParams(_Strict):
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    batch_size: int = Field(default=64, ge=1)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # half precision applies on GPU only
    text: TextEncoderParams


class TrainParams(_Strict):
    model: Literal["ridge"] = "ridge"
    ridge_alpha: float = Field(default=10.0, gt=0)


class EvaluateParams(_Strict):
    bootstrap_samples: int = Field(default=1000, ge=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)


class MlflowParams(_Strict):
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlruns"
    experiment: str = "anipop"


class Params(_Strict):
    seed: int = 42
    paths: Paths
    ingest: IngestParams
    prepare: PrepareParams
    embed: EmbedParams
    train: TrainParams
    evaluate: EvaluateParams
    mlflow: MlflowParams


def load_params(path: str | Path = DEFAULT_PARAMS_FILE) -> Params:
    """Read and validate params.yaml; raise ConfigError naming the file and every bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: not found (run anipop from the project root)") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"{path}: {problems}") from err
