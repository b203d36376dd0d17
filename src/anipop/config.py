"""Typed loader of params.yaml: the only module that reads it.

Every knob lives in params.yaml (DVC tracks it per stage); this module turns it into pydantic models so a
typo or a wrong type fails at start-up with the key's full path, not three stages later.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from anipop.catalog.input_kinds import INPUT_SETS, PITCH_METADATA_KINDS
from anipop.catalog.model_catalog import MULTIMODAL, PITCH_MODELS, SERVABLE, TRAINABLE

DEFAULT_PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """params.yaml is missing, unreadable, or has unknown or mistyped keys."""


class _Strict(BaseModel):
    # extra="forbid": an unknown key is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __getstate__(self) -> dict[Any, Any]:
        """Pickled byte for byte alike in every process: pydantic keeps the names of the fields set as a `set`,
        whose order follows the per-process string hash seed, so a saved model (which holds its settings) got
        other bytes at each run and the registry saw a new model. Sorted here, a set again on loading."""
        state = super().__getstate__()
        state["__pydantic_fields_set__"] = sorted(state["__pydantic_fields_set__"])
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__({**state, "__pydantic_fields_set__": set(state["__pydantic_fields_set__"])})


class Paths(_Strict):
    raw_dir: Path
    prepared_dir: Path
    validation_dir: Path
    embeddings_dir: Path
    embedding_cache_dir: Path
    onnx_dir: Path = Path(".cache/onnx")  # text encoder graphs built from the local weights (cpu_runtime onnx*)
    served_scores_dir: Path = Path(".cache/served_scores")  # a registered model's scores on a table of pitches
    http_cache_dir: Path
    models_dir: Path
    reports_dir: Path


class JikanParams(_Strict):
    """The `jikan` source's knobs; the anime count is ingest.limit, shared with `local`.

    Values follow Jikan's OpenAPI description: `types` lowercase (Jikan answers 400 to `TV`), dates YYYY-MM-DD,
    `end_date` on the date airing *ended*. Why order_by=mal_id: other orders have no tiebreak on the server and
    rankings move during a day-long ingest, so anime can be skipped between pages.
    """

    base_url: str = "https://api.jikan.moe/v4"
    start_date: date | None = None
    end_date: date | None = None
    types: tuple[Literal["tv", "movie", "ova", "special", "ona", "music", "cm", "pv", "tv_special"], ...] = ()
    sfw: bool = False
    order_by: Literal[
        "mal_id", "title", "start_date", "end_date", "episodes", "score", "scored_by", "rank", "popularity",
        "members", "favorites",
    ] = "mal_id"
    sort: Literal["asc", "desc"] = "asc"
    refresh: Literal["full", "incremental"] = "incremental"
    cache_ttl_days: float = Field(default=6.0, gt=0)
    recent_days: int = Field(default=90, ge=0)
    max_failure_share: float = Field(default=0.05, ge=0, le=1)
    max_retries: int = Field(default=5, ge=1)
    rate_limit_attempts: int = Field(default=8, ge=1)
    rate_limit_wait_s: float = Field(default=60.0, ge=0)
    timeout_s: float = Field(default=30.0, gt=0)
    requests_per_second: int = Field(default=1, ge=1)
    requests_per_minute: int = Field(default=50, ge=1)

    @field_validator("types", mode="before")
    @classmethod
    def _lowercase_types(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            upper = [t for t in value if isinstance(t, str) and t != t.lower()]
            if upper:
                raise ValueError(f"types {upper} must be lowercase ({[t.lower() for t in upper]}): Jikan answers 400 otherwise")
        return value


class IngestParams(_Strict):
    source: Literal["local", "jikan"] = "local"  # the keys of anipop.sources.registry.SOURCES (a test)
    local_path: Path
    characters_dir: Path | None = None  # local source: characters.csv.gz + portraits/; None = anime only
    limit: int | None = Field(default=None, ge=1)
    # key staff kept as the pitch field `staff` (MAL's role names); the cast (voice actors) is kept whole
    staff_roles: tuple[str, ...] = ("Director", "Series Composition", "Script", "Character Design", "Music",
                                    "Original Creator")
    # the data as it stood on a date (anipop.sources.as_of): only anime first aired score_lag_days before it
    as_of: date | None = None
    score_lag_days: int = Field(default=90, ge=0)
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


class FranchiseParams(_Strict):
    """How anime are grouped into franchises (anipop.data.franchise documents the rule)."""

    min_base_letters: int = Field(default=4, ge=1)  # a shorter title base is too generic: the whole title is used
    name_min_anime: int = Field(default=2, ge=2)     # a proper name links the anime that mention it when it is
    name_max_anime: int = Field(default=8, ge=2)     # ... found in this many anime (more: a common name)


class PrepareParams(_Strict):
    drop_unscored: bool = True
    min_synopsis_words: int = Field(default=20, ge=0)
    max_synopsis_chars: int = Field(default=20000, ge=1)  # longer is a scraping accident (MAL's longest ~3k)
    drop_characters_without_description: bool = True
    drop_characters_without_portrait: bool = True
    drop_anime_without_main_character: bool = True
    strip_source_credits: bool = True  # "(Source: ANN)" etc.: scraping artefacts a pitch never has
    split: SplitRatios
    split_by: Literal["franchise", "anime"] = "franchise"  # anime: the old per-id hash split, for comparison only
    franchise: FranchiseParams = FranchiseParams()


class TextEncoderParams(_Strict):
    model: str  # a packaged model name, a Hugging Face hub id (e.g. gpt2) or a local save_pretrained folder
    pooling: Literal["mean", "last"] = "mean"
    max_length: int = Field(default=256, ge=8)
    # how it runs on CPU (an accelerator always runs eager torch): torch (fp32), onnx (ONNX Runtime, fp32) or
    # onnx-int8 (ONNX Runtime, int8 weights); the graph is built once from the same local weights, never downloaded
    cpu_runtime: Literal["torch", "onnx", "onnx-int8"] = "torch"


class ImageEncoderParams(_Strict):
    """A non-learned descriptor (offline) or a torchvision ResNet whose classifier is removed."""

    model: str = "color-histogram-thumbnail"  # or a torchvision ResNet name, e.g. resnet50
    weights: str | None = None        # torchvision weights name (e.g. IMAGENET1K_V2): the values and the preprocessing
    weights_path: Path | None = None  # a local state_dict or saved model, instead of torchvision's download cache
    histogram_bins: int = Field(default=16, ge=2, le=256)  # descriptor only: bins per RGB channel
    thumbnail_size: int = Field(default=8, ge=1, le=64)    # descriptor only: side of the RGB thumbnail, pixels


class EmbedProfile(_Strict):
    text: TextEncoderParams
    image: ImageEncoderParams = ImageEncoderParams()


class EmbedParams(_Strict):
    """`profile` picks one named block of `profiles`; `text` and `image` read the chosen block.

    Why profiles: the paper's encoders (gpt2, resnet50) need downloaded weights, the default must run offline,
    and switching is one knob DVC tracks (`dvc exp run -S embed.profile=paper`).
    """

    profile: str = "default"
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    batch_size: int = Field(default=64, ge=1)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # half precision applies on GPU only
    cpu_threads: int = Field(default=0, ge=0)   # threads of the CPU forward pass; 0: one per physical core
    profiles: dict[str, EmbedProfile]

    @model_validator(mode="after")
    def _known_profile(self) -> "EmbedParams":
        if self.profile not in self.profiles:
            raise ValueError(f"profile {self.profile!r} is not one of the profiles {sorted(self.profiles)}")
        return self

    @property
    def text(self) -> TextEncoderParams:
        return self.profiles[self.profile].text

    @property
    def image(self) -> ImageEncoderParams:
        return self.profiles[self.profile].image


# allowed names, derived from the registries beside the code that uses them (plain data: no heavy import)
InputSet = Literal[tuple(INPUT_SETS)]                     # anipop.catalog.input_kinds: the paper's ablations + metadata
MetadataField = Literal[PITCH_METADATA_KINDS]             # anipop.catalog.input_kinds: each a switchable input kind
PitchModel = Literal[PITCH_MODELS]                        # anipop.catalog.model_catalog: synopsis + metadata models


class NetworkShape(_Strict):
    hidden: tuple[int, ...] = Field(min_length=1)  # units per hidden layer, input side first
    dropout: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _positive_widths(self) -> "NetworkShape":
        if any(size < 1 for size in self.hidden):
            raise ValueError(f"hidden layer sizes must be >= 1, got {list(self.hidden)}")
        return self


class NetworkParams(_Strict):
    """Our fully connected MLPs (not the paper's widths: see paper_head): two shapes sharing one optimiser."""

    wide: NetworkShape = NetworkShape(hidden=(1024, 512, 256), dropout=0.5)
    small: NetworkShape = NetworkShape(hidden=(256, 64), dropout=0.3)
    learning_rate: float = Field(default=3e-4, gt=0)
    weight_decay: float = Field(default=0.05, ge=0)
    batch_size: int = Field(default=64, ge=1)
    max_epochs: int = Field(default=30, ge=1)
    patience: int = Field(default=5, ge=1)  # epochs without a better validation loss before stopping
    standardize: bool = True                # z-score the features with train statistics (stored in the model)
    threads: int = Field(default=2, ge=1)   # torch CPU threads: fixed so runs are bit-for-bit repeatable


class BenchmarkParams(_Strict):
    max_features: int = Field(default=20000, ge=1)  # TF-IDF vocabulary per text kind
    image_size: int = Field(default=32, ge=1, le=256)  # portraits resized to this square before PILToTensor
    alpha: float = Field(default=1.0, gt=0)          # ridge penalty of the benchmark's linear regressor


class TrackRecordParams(_Strict):
    """Track records as pitch-model features (anipop.modeling.track_records): each value's record before the row's year."""

    enabled: bool = True
    fields: tuple[MetadataField, ...] = ("studios", "producers", "source", "genres", "themes", "demographic", "type",
                                         "rating", "staff")
    shrink: float = Field(default=10.0, ge=0)      # a value's mean is shrunk towards the history's, as if it had this
                                                   # many more anime at that mean
    recent_years: int = Field(default=5, ge=1)     # the recent record: the anime of these last years only
    relative: bool = False                         # records of scores minus their year's mean


class PitchModelParams(_Strict):
    """Models over the synopsis and the pitch metadata (anipop.modeling.pitch); see params.yaml for each knob."""

    metadata_fields: tuple[MetadataField, ...] = (
        "genres", "themes", "type", "source", "demographic", "studios", "producers", "rating", "year")  # switched on
    min_count: int = Field(default=5, ge=1)            # rarer values (in train) are encoded as unknown
    tfidf_max_features: int = Field(default=30000, ge=1)
    tfidf_min_df: int = Field(default=2, ge=1)         # a word in fewer training synopses is left out
    text_alpha: float = Field(default=3.0, gt=0)       # ridge on the synopsis TF-IDF
    embedding_alpha: float = Field(default=10.0, gt=0)  # ridge on the synopsis embedding
    text_neighbours: int = Field(default=0, ge=0)  # k nearest training synopses' score (embedding); 0 = off
    linear_alpha: float = Field(default=3.0, gt=0)     # meta_ridge: one ridge over TF-IDF + multi-hot
    embedding_weight: float = Field(default=0.05, ge=0)  # meta_ridge: scale of the z-scored embedding block
    stack_folds: int = Field(default=5, ge=2)          # grouped inner folds of the out-of-fold text predictions
    gbm_learning_rate: float = Field(default=0.05, gt=0, le=1)  # LightGBM
    gbm_n_estimators: int = Field(default=400, ge=1)
    gbm_num_leaves: int = Field(default=31, ge=2)
    gbm_min_child_samples: int = Field(default=20, ge=1)
    gbm_l2: float = Field(default=1.0, ge=0)
    gbm_colsample: float = Field(default=0.5, gt=0, le=1)
    gbm_subsample: float = Field(default=0.8, gt=0, le=1)   # rows each tree sees
    gbm_seeds: int = Field(default=3, ge=1)                  # fits averaged, each with its own seed
    track_records: TrackRecordParams = TrackRecordParams()
    fit_rows: Literal["train", "train_val"] = "train"  # the pitch models need no early stopping: val rows can train
    blend_linear: float = Field(default=0.3, ge=0, le=1)  # pitch_stack: weight of meta_ridge beside the GBM
    character_feature: bool = True   # pitch_gbm and pitch_stack add a character correction (pitch)
    character_alpha: float = Field(default=100.0, gt=0)  # its ridge on the aggregated character blocks


class PaperHeadParams(_Strict):
    """The authors' head and training settings (anipop.modeling.paper_head); widths are fixed there, from their code."""

    learning_rate: float = Field(default=5e-5, gt=0)   # AdamW
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)    # torch's AdamW default: the authors set none
    batch_size: int = Field(default=16, ge=1)
    epochs: int = Field(default=5, ge=1)               # linear schedule to 0, no warm-up; last epoch kept
    clip_norm: float = Field(default=1.0, gt=0)
    standardize: bool = True   # z-score frozen features with train statistics (the authors fine-tuned instead)
    shuffle: bool = True       # the authors' DataLoader did not shuffle
    threads: int = Field(default=1, ge=1)  # one: a 16-row step is too small to split, and on a busy machine
                                           # two threads were 18x slower per step (0.60 s vs 0.033 s)


class FinetuneParams(_Strict):
    """End-to-end fine-tuning of the text encoder with the authors' head (anipop.modeling.finetune); opt-in."""

    model: str | None = None                # text model; None: the embed profile's
    pooling: Literal["mean", "last"] = "mean"   # never position 0: under left padding that is a pad token
    padding_side: Literal["right", "left"] = "right"
    max_length: int = Field(default=128, ge=8)
    epochs: int = Field(default=1, ge=1)        # MiniLM on 2 CPU cores: ~28 min an epoch at 128 tokens
    batch_size: int = Field(default=16, ge=1)   # micro-batch
    accumulation: int = Field(default=1, ge=1)  # micro-batches per optimiser step
    learning_rate: float = Field(default=5e-5, gt=0)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    clip_norm: float = Field(default=1.0, gt=0)
    bf16: bool = True                           # bf16 autocast on CUDA; CPU stays float32
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    threads: int = Field(default=1, ge=1)       # CPU threads (on a busy 2-core machine 1 beat 2 by 2.7x)
    max_train_rows: int | None = Field(default=None, ge=1)  # cap for a quick measured run
    backtest: bool = False                      # also refit per CV fold and in the temporal backtest (GPU)


TrainModel = Literal[TRAINABLE]   # anipop.catalog.model_catalog: every model but the baselines (always trained beside)
ServableModel = Literal[SERVABLE]  # anipop.catalog.model_catalog: scores a raw pitch with an interval


class TrainParams(_Strict):
    model: ServableModel = "mlp_wide"  # the primary (served); the one place it is named: train records it
    models: tuple[TrainModel, ...] = ("mlp_wide", "mlp_small", "ridge", "tfidf_benchmark")
    inputs: InputSet = "all_inputs"
    ablations: tuple[InputSet, ...] = ()
    aggregation: Literal["mean", "max"] = "mean"
    modality_dropout: float = Field(default=0.0, ge=0, lt=1)  # network: chance a character modality is hidden
    character_presence: Literal["learn", "neutral"] = "learn"  # neutral: presence alone never moves a score
    ridge_alpha: float = Field(default=10.0, gt=0)
    network: NetworkParams = NetworkParams()
    benchmark: BenchmarkParams = BenchmarkParams()
    paper_head: PaperHeadParams = PaperHeadParams()
    finetune: FinetuneParams = FinetuneParams()
    pitch: PitchModelParams = PitchModelParams()
    workers: int = Field(default=0, ge=0)  # processes fitting models side by side (0: one per CPU); same models

    @model_validator(mode="after")
    def _primary_is_trained(self) -> "TrainParams":
        if self.model not in self.models:
            raise ValueError(f"model {self.model!r} must also be listed in models {list(self.models)}")
        return self


class TemporalParams(_Strict):
    """The temporal backtest: train on franchises that started before `cut_year`, test on those after."""

    enabled: bool = True
    cut_year: int = Field(default=2018, ge=1900, le=2100)


class RollingParams(_Strict):
    """The rolling-origin backtest (anipop.evaluation.backtest.run_rolling): one fit per year, scored on its new franchises."""

    enabled: bool = True
    first_year: int = Field(default=2012, ge=1900, le=2100)
    last_year: int = Field(default=2022, ge=1900, le=2100)

    @model_validator(mode="after")
    def _order(self) -> "RollingParams":
        if self.last_year < self.first_year:
            raise ValueError(f"last_year {self.last_year} is before first_year {self.first_year}")
        return self


class PreviousRecipeParams(_Strict):
    """The champion's previous recipe, refitted beside it on every backtest split (CV folds, the temporal cut, each
    rolling-origin year) so a recipe change is judged on the same anime: what the new one gains, with intervals.

    overrides: dotted params keys (as `dvc exp run -S` takes them) that turn today's recipe into the previous one.
    """

    enabled: bool = True
    name: str = "pitch_stack_before"   # how the refitted previous recipe is shown beside the models
    overrides: dict[str, Any] = Field(default_factory=dict)


class EvaluateParams(_Strict):
    bootstrap_samples: int = Field(default=1000, ge=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    cv_folds: int = Field(default=5, ge=0)   # franchise-grouped K-fold CV over train+val; 0 = off
    cv_repeats: int = Field(default=1, ge=1)  # reshuffled group-to-fold assignments (K x repeats fits per model)
    temporal: TemporalParams = TemporalParams()
    rolling: RollingParams = RollingParams()
    previous_recipe: PreviousRecipeParams = PreviousRecipeParams()
    workers: int = Field(default=0, ge=0)  # processes for CV folds (0: one per CPU); no figure changes

    @model_validator(mode="after")
    def _folds(self) -> "EvaluateParams":
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (off) or at least 2")
        return self


class MultimodalParams(_Strict):
    """The multimodal ablation (anipop.studies.multimodal_ablation): which embedding models it refits per fold."""

    models: tuple[Literal[MULTIMODAL], ...] = ("ridge", "mlp_small")  # anipop.catalog.model_catalog.MULTIMODAL


AblationModel = Literal[tuple(name for name in TRAINABLE if name != "finetune")]  # refitted per fold: no encoder


class FieldAblationParams(_Strict):
    """The per-input-set ablation (anipop.studies.field_ablation): each set refitted on the backtest's folds, cheaply.

    A configured model fits only the sets it reads (meta_ridge: synopsis and metadata; ridge, tfidf_benchmark:
    the synopsis), so one list serves the metadata fields and the text-only rows alike.
    """

    enabled: bool = True
    input_sets: tuple[InputSet, ...] = ("genres", "themes", "type", "source", "demographic", "studios", "producers",
                                        "rating", "year", "metadata", "synopsis")
    models: tuple[AblationModel, ...] = ("meta_ridge", "ridge", "tfidf_benchmark")
    bootstrap_samples: int = Field(default=0, ge=0)  # temporal intervals per set and model (0: point values only)

    @model_validator(mode="after")
    def _lists(self) -> "FieldAblationParams":
        for name, values in (("input_sets", self.input_sets), ("models", self.models)):
            if self.enabled and not values:
                raise ValueError(f"{name} is empty; list at least one, or set enabled: false")
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{name} lists {repeated} more than once")
        return self


class MlflowParams(_Strict):
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlruns"
    experiment: str = "anipop"
    request_timeout_s: float = Field(default=15.0, gt=0)   # per HTTP request to a tracking server
    request_max_retries: int = Field(default=2, ge=0)      # MLflow's retries of a failed request
    # which evaluation children log a servable model: main = the main input set's models and the baselines (the
    # candidates to register), all = every ablation child too (~45 more model copies in the artifact store)
    log_models: Literal["main", "all", "primary"] = "main"


PromotionPolicy = Literal["test_split", "newer_unless_worse", "newest_franchises", "always"]  # anipop.registry.promotion


class RegistryParams(_Strict):
    """Registration and champion promotion (anipop register)."""

    model_name: str = "anipop"
    promotion_metric: str = "spearman"          # one of anipop.catalog.metrics.METRICS (its direction decides "better")
    policy: PromotionPolicy = "newer_unless_worse"  # how a candidate is judged against the champion (promotion.py)
    newest_years: int = Field(default=3, ge=1)  # newest_franchises: test anime of franchises begun in these years
    interval_coverage: float = Field(default=0.9, gt=0, lt=1)  # split-conformal, from validation residuals
    lock_timeout_s: float = Field(default=900.0, gt=0)   # wait for another registration of the same model
    lock_stale_s: float = Field(default=3600.0, gt=0)    # a lock older than this (holder on another host) is broken


    @field_validator("promotion_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        from anipop.catalog.metrics import METRIC_NAMES  # numpy/scipy only: no cycle, no heavy import

        if value not in METRIC_NAMES:
            raise ValueError(f"{value!r} is not a metric anipop reports; one of {list(METRIC_NAMES)}")
        return value

class DriftParams(_Strict):
    """The drift check of every retraining (anipop.monitoring): Evidently's distances, and what counts as drift."""

    method: str | None = None            # Evidently's stattest for every column; None: its choice by sample size
    threshold: float | None = Field(default=None, gt=0)  # that method's drift threshold; None: Evidently's default
    share: float = Field(default=0.5, gt=0, le=1)       # drift: at least this share of the compared columns drifted
    live_drop: float = Field(default=0.1, gt=0)         # ... or live Spearman this far below the champion's test one
    min_new_anime: int = Field(default=30, ge=2)        # fewer new scored anime: no live metrics or embedding drift
    max_reference_rows: int = Field(default=1000, ge=10)  # seeded samples: the champion's training anime, and the
    max_new_rows: int = Field(default=2000, ge=10)        # new anime (scored by the champion for live metrics)
    prediction_rows: int = Field(default=300, ge=10)    # training anime scored for the predicted-score distribution
    min_value_count: int = Field(default=5, ge=1)       # rarer studios, producers, ... are pooled as "(rare)"


class RetrainParams(_Strict):
    """The scheduled retraining (flows/retrain.py)."""

    trigger: Literal["new_data", "drift"] = "new_data"  # new_data: any new or changed data retrains; drift: only
                                                        # when the drift check says drift


class ReplayParams(_Strict):
    """`anipop replay` (anipop.monitoring.replay, flows/replay.py): the scheduled retraining replayed over history."""

    start: date = date(2014, 1, 1)
    end: date = date(2023, 1, 1)
    every_months: int = Field(default=12, ge=1)
    workspace: Path = Path(".replay")   # its own DVC workspace and step snapshots (ignored by git and DVC)
    model_name: str = "anipop-replay"   # its registered models: <model_name>-<policy>, one per policy
    experiment: str = "anipop-replay"   # its MLflow experiment (the steps' pipeline runs: <experiment>-steps)
    policies: tuple[PromotionPolicy, ...] = ("test_split", "newer_unless_worse", "newest_franchises", "always")
    bootstrap_samples: int = Field(default=1000, ge=0)
    overrides: dict[str, Any] = Field(default_factory=dict)  # dotted params keys of the workspace, e.g. train.ablations

    @model_validator(mode="after")
    def _span(self) -> "ReplayParams":
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if not self.policies or len(set(self.policies)) != len(self.policies):
            raise ValueError(f"policies must list each policy once, got {list(self.policies)}")
        return self


class ServingParams(_Strict):
    """Bounds on one request to the served model (stored inside it); the synopsis bound is prepare's."""

    max_characters_per_pitch: int = Field(default=20, ge=0)
    max_image_pixels: int = Field(default=4_000_000, ge=1)       # decoded pixels of one portrait
    max_request_pixels: int = Field(default=20_000_000, ge=1)    # decoded pixels of all portraits of a request
    max_request_bytes: int = Field(default=5_000_000, ge=1)      # text and image fields of a request together
    max_pitches_per_request: int = Field(default=100, ge=1)


class ScheduleParams(_Strict):
    """The retraining deployment `anipop schedule` serves (flows/retrain.py)."""

    cron: str = "0 3 * * 1"            # minute hour day-of-month month day-of-week
    timezone: str = "UTC"
    deployment: str = "weekly-retrain"

    @model_validator(mode="after")
    def _five_fields(self) -> "ScheduleParams":
        if len(self.cron.split()) != 5:
            raise ValueError(f"cron {self.cron!r} must have 5 fields: minute hour day-of-month month day-of-week")
        return self


class OrchestrationParams(_Strict):
    """Prefect flows (flows/): task runner, retries of the steps that touch a network, the step cache folder."""

    task_runner: Literal["thread", "dask"] = "thread"
    max_workers: int = Field(default=4, ge=1)        # thread pool size, or workers of the local Dask cluster
    dask_address: str | None = None                  # an existing Dask scheduler; None starts a local cluster
    dask_processes: bool = True                      # local cluster workers as processes (False: threads)
    embed_shards: int = Field(default=1, ge=1)       # >1 embeds that many slices of the data as parallel tasks
    retries: int = Field(default=3, ge=0)            # jikan ingest, evaluate and register (MLflow)
    retry_delays_s: tuple[float, ...] = Field(default=(10.0, 60.0, 300.0), min_length=1)
    prefect_dir: Path = Path(".prefect")             # scratch of the flows (embedding shards)
    mlflow_ui_url: str = "http://127.0.0.1:5000"     # linked from flow runs when tracking_uri is not http(s)
    schedule: ScheduleParams = ScheduleParams()


class PaperFlaws(_Strict):
    """The authors' flaws (anipop.studies.paper_mode), each a switch."""

    per_split_scaling: bool = True          # labels min-max scaled per split with that split's own min and max
    select_on_test: bool = True             # the epoch kept is the one best on the test split
    first_token_left_padding: bool = True   # pooled vector = position 0 under left padding


class PaperModeParams(_Strict):
    """Paper-faithful mode: the authors' setup on our data (`anipop paper-mode`)."""

    enabled: bool = False                   # opt-in: its own encoding pass costs ~15 min on 2 cores the first time
    encoder: str | None = None              # text model; None: the embed profile's
    max_length: int = Field(default=128, ge=8)  # the authors' synopsis length
    flaws: PaperFlaws = PaperFlaws()
    ablate: bool = True                     # also each flaw off in turn, and all off
    head: PaperHeadParams = PaperHeadParams(standardize=False, shuffle=False)  # exactly the authors' settings


class Params(_Strict):
    seed: int = 42
    paths: Paths
    ingest: IngestParams
    prepare: PrepareParams
    embed: EmbedParams
    train: TrainParams
    evaluate: EvaluateParams
    multimodal: MultimodalParams = MultimodalParams()
    mlflow: MlflowParams
    registry: RegistryParams = RegistryParams()
    serving: ServingParams = ServingParams()
    drift: DriftParams = DriftParams()
    retrain: RetrainParams = RetrainParams()
    replay: ReplayParams = ReplayParams()

    @model_validator(mode="after")
    def _replay_apart(self) -> "Params":
        """The replay registers and logs under names of its own: the user's champion is never touched."""
        if self.replay.model_name == self.registry.model_name or self.replay.experiment == self.mlflow.experiment:
            raise ValueError(f"replay.model_name and replay.experiment must differ from registry.model_name "
                             f"({self.registry.model_name}) and mlflow.experiment ({self.mlflow.experiment})")
        return self
    orchestration: OrchestrationParams = OrchestrationParams()
    paper_mode: PaperModeParams = PaperModeParams()
    field_ablation: FieldAblationParams = FieldAblationParams()

    @model_validator(mode="after")
    def _previous_recipe(self) -> "Params":
        """A previous recipe whose overrides name no key, or give a bad value, fails when params.yaml is read."""
        if self.evaluate.previous_recipe.enabled:
            self.previous_recipe_params()
        return self

    def with_overrides(self, overrides: dict[str, Any]) -> "Params":
        """These params with dotted keys replaced, validated again (a typo'd key raises ValueError)."""
        raw = self.model_dump(mode="json")
        for dotted, value in overrides.items():
            set_dotted(raw, dotted, value)
        return Params.model_validate(raw)

    def previous_recipe_params(self) -> "Params":
        """The params of evaluate.previous_recipe: today's with its overrides (and no previous recipe of its own)."""
        return self.with_overrides({**self.evaluate.previous_recipe.overrides,
                                    "evaluate.previous_recipe.enabled": False})


def set_dotted(tree: dict, dotted: str, value: object) -> None:
    """tree['a']['b'] = value for 'a.b' (keys as `dvc exp run -S` takes them); the key must already exist."""
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        if not isinstance(node.get(key), dict):
            raise ValueError(f"{dotted!r} names no section of params.yaml")
        node = node[key]
    if leaf not in node:
        raise ValueError(f"{dotted!r} is not a key of params.yaml")
    node[leaf] = value


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
