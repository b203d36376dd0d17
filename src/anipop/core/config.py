"""Typed loader of params.yaml: the only module that reads it.

Every knob lives in params.yaml (DVC tracks it per stage), with its value and the words that explain it; this
module holds only each knob's type and bounds, so a typo, a wrong type or a missing key fails at start-up with the
key's full path, not three stages later. No field has a default here: a value written twice drifts apart, and
params.yaml's comments can change without making every DVC stage (which all import this module) stale.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from anipop.core.input_kinds import INPUT_SETS, PITCH_METADATA_KINDS
from anipop.core.model_catalog import MULTIMODAL, PITCH_MODELS, SERVABLE, TRAINABLE

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
    onnx_dir: Path
    served_scores_dir: Path
    http_cache_dir: Path
    models_dir: Path
    reports_dir: Path


class JikanParams(_Strict):
    """The `jikan` source's knobs; the anime count is ingest.limit, shared with `local`.

    Values follow Jikan's OpenAPI description: `types` lowercase (Jikan answers 400 to `TV`), dates YYYY-MM-DD,
    `end_date` on the date airing *ended*. Why order_by=mal_id: other orders have no tiebreak on the server and
    rankings move during a day-long ingest, so anime can be skipped between pages.
    """

    base_url: str
    start_date: date | None
    end_date: date | None
    types: tuple[Literal["tv", "movie", "ova", "special", "ona", "music", "cm", "pv", "tv_special"], ...]
    sfw: bool
    order_by: Literal[
        "mal_id", "title", "start_date", "end_date", "episodes", "score", "scored_by", "rank", "popularity",
        "members", "favorites",
    ]
    sort: Literal["asc", "desc"]
    refresh: Literal["full", "incremental"]
    cache_ttl_days: float = Field(gt=0)
    recent_days: int = Field(ge=0)
    max_failure_share: float = Field(ge=0, le=1)
    max_retries: int = Field(ge=1)
    rate_limit_attempts: int = Field(ge=1)
    rate_limit_wait_s: float = Field(ge=0)
    timeout_s: float = Field(gt=0)
    requests_per_second: int = Field(ge=1)
    requests_per_minute: int = Field(ge=1)

    @field_validator("types", mode="before")
    @classmethod
    def _lowercase_types(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            upper = [t for t in value if isinstance(t, str) and t != t.lower()]
            if upper:
                raise ValueError(f"types {upper} must be lowercase ({[t.lower() for t in upper]}): Jikan answers 400 otherwise")
        return value


class IngestParams(_Strict):
    source: Literal["local", "jikan"]
    local_path: Path
    characters_dir: Path | None
    limit: int | None = Field(ge=1)
    # key staff kept as the pitch field `staff` (MAL's role names); the cast (voice actors) is kept whole
    staff_roles: tuple[str, ...]
    # the data as it stood on a date (anipop.sources.as_of): only anime first aired score_lag_days before it
    as_of: date | None
    score_lag_days: int = Field(ge=0)
    jikan: JikanParams


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

    min_base_letters: int = Field(ge=1)
    name_min_anime: int = Field(ge=2)
    name_max_anime: int = Field(ge=2)


class PrepareParams(_Strict):
    drop_unscored: bool
    min_synopsis_words: int = Field(ge=0)
    max_synopsis_chars: int = Field(ge=1)
    drop_characters_without_description: bool
    drop_characters_without_portrait: bool
    drop_anime_without_main_character: bool
    strip_source_credits: bool
    split: SplitRatios
    split_by: Literal["franchise", "anime"]
    franchise: FranchiseParams


class TextEncoderParams(_Strict):
    model: str  # a packaged model name, a Hugging Face hub id (e.g. gpt2) or a local save_pretrained folder
    pooling: Literal["mean", "last"]
    max_length: int = Field(ge=8)
    # how it runs on CPU (an accelerator always runs eager torch): torch (fp32), onnx (ONNX Runtime, fp32) or
    # onnx-int8 (ONNX Runtime, int8 weights); the graph is built once from the same local weights, never downloaded
    cpu_runtime: Literal["torch", "onnx", "onnx-int8"]


class ImageEncoderParams(_Strict):
    """A non-learned descriptor (offline) or a torchvision ResNet whose classifier is removed."""

    model: str
    weights: str | None
    weights_path: Path | None
    histogram_bins: int = Field(ge=2, le=256)
    thumbnail_size: int = Field(ge=1, le=64)


class EmbedProfile(_Strict):
    text: TextEncoderParams
    image: ImageEncoderParams


class EmbedParams(_Strict):
    """`profile` picks one named block of `profiles`; `text` and `image` read the chosen block.

    Why profiles: the paper's encoders (gpt2, resnet50) need downloaded weights, the default must run offline,
    and switching is one knob DVC tracks (`dvc exp run -S embed.profile=paper`).
    """

    profile: str
    device: Literal["auto", "cuda", "mps", "cpu"]
    batch_size: int = Field(ge=1)
    dtype: Literal["float32", "bfloat16", "float16"]
    cpu_threads: int = Field(ge=0)
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
InputSet = Literal[tuple(INPUT_SETS)]                     # anipop.core.input_kinds: the paper's ablations + metadata
MetadataField = Literal[PITCH_METADATA_KINDS]             # anipop.core.input_kinds: each a switchable input kind
PitchModel = Literal[PITCH_MODELS]                        # anipop.core.model_catalog: synopsis + metadata models


class NetworkShape(_Strict):
    hidden: tuple[int, ...] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _positive_widths(self) -> "NetworkShape":
        if any(size < 1 for size in self.hidden):
            raise ValueError(f"hidden layer sizes must be >= 1, got {list(self.hidden)}")
        return self


class NetworkParams(_Strict):
    """Our fully connected MLPs (not the paper's widths: see paper_head): two shapes sharing one optimiser."""

    wide: NetworkShape
    small: NetworkShape
    learning_rate: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    standardize: bool
    threads: int = Field(ge=1)


class BenchmarkParams(_Strict):
    max_features: int = Field(ge=1)
    image_size: int = Field(ge=1, le=256)
    alpha: float = Field(gt=0)


class TrackRecordParams(_Strict):
    """Track records as pitch-model features (anipop.modeling.track_records): each value's record before the row's year."""

    enabled: bool
    fields: tuple[MetadataField, ...]
    shrink: float = Field(ge=0)
    recent_years: int = Field(ge=1)
    relative: bool


class PitchModelParams(_Strict):
    """Models over the synopsis and the pitch metadata (anipop.modeling.pitch); see params.yaml for each knob."""

    metadata_fields: tuple[MetadataField, ...]
    min_count: int = Field(ge=1)
    tfidf_max_features: int = Field(ge=1)
    tfidf_min_df: int = Field(ge=1)
    text_alpha: float = Field(gt=0)
    embedding_alpha: float = Field(gt=0)
    text_neighbours: int = Field(ge=0)
    linear_alpha: float = Field(gt=0)
    embedding_weight: float = Field(ge=0)
    stack_folds: int = Field(ge=2)
    gbm_learning_rate: float = Field(gt=0, le=1)
    gbm_n_estimators: int = Field(ge=1)
    gbm_num_leaves: int = Field(ge=2)
    gbm_min_child_samples: int = Field(ge=1)
    gbm_l2: float = Field(ge=0)
    gbm_colsample: float = Field(gt=0, le=1)
    gbm_subsample: float = Field(gt=0, le=1)
    gbm_seeds: int = Field(ge=1)
    track_records: TrackRecordParams
    fit_rows: Literal["train", "train_val"]
    blend_linear: float = Field(ge=0, le=1)
    character_feature: bool
    character_alpha: float = Field(gt=0)


class PaperHeadParams(_Strict):
    """The authors' head and training settings (anipop.modeling.paper_head); widths are fixed there, from their code."""

    learning_rate: float = Field(gt=0)
    eps: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    clip_norm: float = Field(gt=0)
    standardize: bool
    shuffle: bool
    threads: int = Field(ge=1)


class FinetuneParams(_Strict):
    """End-to-end fine-tuning of the text encoder with the authors' head (anipop.modeling.finetune); opt-in."""

    model: str | None
    pooling: Literal["mean", "last"]
    padding_side: Literal["right", "left"]
    max_length: int = Field(ge=8)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    accumulation: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    eps: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    clip_norm: float = Field(gt=0)
    bf16: bool
    device: Literal["auto", "cuda", "mps", "cpu"]
    threads: int = Field(ge=1)
    max_train_rows: int | None = Field(ge=1)
    backtest: bool


TrainModel = Literal[TRAINABLE]   # anipop.core.model_catalog: every model but the baselines (always trained beside)
ServableModel = Literal[SERVABLE]  # anipop.core.model_catalog: scores a raw pitch with an interval


class TrainParams(_Strict):
    model: ServableModel
    models: tuple[TrainModel, ...]
    inputs: InputSet
    ablations: tuple[InputSet, ...]
    aggregation: Literal["mean", "max"]
    modality_dropout: float = Field(ge=0, lt=1)
    character_presence: Literal["learn", "neutral"]
    ridge_alpha: float = Field(gt=0)
    network: NetworkParams
    benchmark: BenchmarkParams
    paper_head: PaperHeadParams
    finetune: FinetuneParams
    pitch: PitchModelParams
    workers: int = Field(ge=0)

    @model_validator(mode="after")
    def _primary_is_trained(self) -> "TrainParams":
        if self.model not in self.models:
            raise ValueError(f"model {self.model!r} must also be listed in models {list(self.models)}")
        return self


class TemporalParams(_Strict):
    """The temporal backtest: train on franchises that started before `cut_year`, test on those after."""

    enabled: bool
    cut_year: int = Field(ge=1900, le=2100)


class RollingParams(_Strict):
    """The rolling-origin backtest (anipop.evaluation.backtest.run_rolling): one fit per year, scored on its new franchises."""

    enabled: bool
    first_year: int = Field(ge=1900, le=2100)
    last_year: int = Field(ge=1900, le=2100)

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

    enabled: bool
    name: str
    overrides: dict[str, Any]


class EvaluateParams(_Strict):
    bootstrap_samples: int = Field(ge=0)
    confidence: float = Field(gt=0, lt=1)
    cv_folds: int = Field(ge=0)
    cv_repeats: int = Field(ge=1)
    temporal: TemporalParams
    rolling: RollingParams
    previous_recipe: PreviousRecipeParams
    workers: int = Field(ge=0)

    @model_validator(mode="after")
    def _folds(self) -> "EvaluateParams":
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (off) or at least 2")
        return self


class MultimodalParams(_Strict):
    """The multimodal ablation (anipop.studies.multimodal_ablation): which embedding models it refits per fold."""

    models: tuple[Literal[MULTIMODAL], ...]


AblationModel = Literal[tuple(name for name in TRAINABLE if name != "finetune")]  # refitted per fold: no encoder


class FieldAblationParams(_Strict):
    """The per-input-set ablation (anipop.studies.field_ablation): each set refitted on the backtest's folds, cheaply.

    A configured model fits only the sets it reads (meta_ridge: synopsis and metadata; ridge, tfidf_benchmark:
    the synopsis), so one list serves the metadata fields and the text-only rows alike.
    """

    enabled: bool
    input_sets: tuple[InputSet, ...]
    models: tuple[AblationModel, ...]
    bootstrap_samples: int = Field(ge=0)

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
    tracking_uri: str
    artifact_location: str
    experiment: str
    request_timeout_s: float = Field(gt=0)
    request_max_retries: int = Field(ge=0)
    # which evaluation children log a servable model: main = the main input set's models and the baselines (the
    # candidates to register), all = every ablation child too (~45 more model copies in the artifact store)
    log_models: Literal["main", "all", "primary"]


PromotionPolicy = Literal["test_split", "newer_unless_worse", "newest_franchises", "always"]  # anipop.registry.promotion


class RegistryParams(_Strict):
    """Registration and champion promotion (anipop register)."""

    model_name: str
    promotion_metric: str
    policy: PromotionPolicy
    newest_years: int = Field(ge=1)
    interval_coverage: float = Field(gt=0, lt=1)
    lock_timeout_s: float = Field(gt=0)
    lock_stale_s: float = Field(gt=0)


    @field_validator("promotion_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        from anipop.core.metrics import METRIC_NAMES  # numpy/scipy only: no cycle, no heavy import

        if value not in METRIC_NAMES:
            raise ValueError(f"{value!r} is not a metric anipop reports; one of {list(METRIC_NAMES)}")
        return value

class DriftParams(_Strict):
    """The drift check of every retraining (anipop.monitoring): Evidently's distances, and what counts as drift."""

    method: str | None
    threshold: float | None = Field(gt=0)
    share: float = Field(gt=0, le=1)
    live_drop: float = Field(gt=0)
    min_new_anime: int = Field(ge=2)
    max_reference_rows: int = Field(ge=10)
    max_new_rows: int = Field(ge=10)
    prediction_rows: int = Field(ge=10)
    min_value_count: int = Field(ge=1)


class RetrainParams(_Strict):
    """The scheduled retraining (flows/retrain.py)."""

    trigger: Literal["new_data", "drift"]


class ReplayParams(_Strict):
    """`anipop replay` (anipop.monitoring.replay, flows/replay.py): the scheduled retraining replayed over history."""

    start: date
    end: date
    every_months: int = Field(ge=1)
    workspace: Path
    model_name: str
    experiment: str
    policies: tuple[PromotionPolicy, ...]
    bootstrap_samples: int = Field(ge=0)
    overrides: dict[str, Any]

    @model_validator(mode="after")
    def _span(self) -> "ReplayParams":
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if not self.policies or len(set(self.policies)) != len(self.policies):
            raise ValueError(f"policies must list each policy once, got {list(self.policies)}")
        return self


class ServingParams(_Strict):
    """Bounds on one request to the served model (stored inside it); the synopsis bound is prepare's."""

    max_characters_per_pitch: int = Field(ge=0)
    max_image_pixels: int = Field(ge=1)
    max_request_pixels: int = Field(ge=1)
    max_request_bytes: int = Field(ge=1)
    max_pitches_per_request: int = Field(ge=1)


class ScheduleParams(_Strict):
    """The retraining deployment `anipop schedule` serves (flows/retrain.py)."""

    cron: str
    timezone: str
    deployment: str

    @model_validator(mode="after")
    def _five_fields(self) -> "ScheduleParams":
        if len(self.cron.split()) != 5:
            raise ValueError(f"cron {self.cron!r} must have 5 fields: minute hour day-of-month month day-of-week")
        return self


class OrchestrationParams(_Strict):
    """Prefect flows (flows/): task runner, retries of the steps that touch a network, the step cache folder."""

    task_runner: Literal["thread", "dask"]
    max_workers: int = Field(ge=1)
    dask_address: str | None
    dask_processes: bool
    embed_shards: int = Field(ge=1)
    retries: int = Field(ge=0)
    retry_delays_s: tuple[float, ...] = Field(min_length=1)
    prefect_dir: Path
    mlflow_ui_url: str
    schedule: ScheduleParams


class PaperFlaws(_Strict):
    """The authors' flaws (anipop.studies.paper_mode), each a switch."""

    per_split_scaling: bool
    select_on_test: bool
    first_token_left_padding: bool


class PaperModeParams(_Strict):
    """Paper-faithful mode: the authors' setup on our data (`anipop paper-mode`)."""

    enabled: bool
    encoder: str | None
    max_length: int = Field(ge=8)
    flaws: PaperFlaws
    ablate: bool
    head: PaperHeadParams


class Params(_Strict):
    seed: int
    paths: Paths
    ingest: IngestParams
    prepare: PrepareParams
    embed: EmbedParams
    train: TrainParams
    evaluate: EvaluateParams
    multimodal: MultimodalParams
    mlflow: MlflowParams
    registry: RegistryParams
    serving: ServingParams
    drift: DriftParams
    retrain: RetrainParams
    replay: ReplayParams

    @model_validator(mode="after")
    def _replay_apart(self) -> "Params":
        """The replay registers and logs under names of its own: the user's champion is never touched."""
        if self.replay.model_name == self.registry.model_name or self.replay.experiment == self.mlflow.experiment:
            raise ValueError(f"replay.model_name and replay.experiment must differ from registry.model_name "
                             f"({self.registry.model_name}) and mlflow.experiment ({self.mlflow.experiment})")
        return self
    orchestration: OrchestrationParams
    paper_mode: PaperModeParams
    field_ablation: FieldAblationParams

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
