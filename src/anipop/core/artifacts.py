"""What one step hands to the next: where every artefact lives and how it is read and written.

Why one module: a step's outputs are another step's inputs. Their file names, the model bundle's fields, the
score scaler, the embedding matrices and the quarantine rows are a contract between steps; written here once,
a step imports the contract, never another step's module, and a renamed file or field cannot drift apart
between writer and reader. dvc.yaml declares the same paths (through params.yaml's `paths`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anipop.core.config import Paths
from anipop.core.utils import atomic_path, read_json, write_json

BUNDLE_VERSION = 1  # bump when ModelBundle's fields change meaning: an older pickled bundle is then refused
ANIME_TABLE = "anime.parquet"            # raw and prepared: one row per anime
CHARACTERS_TABLE = "characters.parquet"  # raw and prepared: one row per main character
QUARANTINE_TABLE = "quarantine.parquet"  # raw, prepared and embeddings: the rows a step refused, with why


@dataclass(frozen=True)
class IntervalCalibration:
    """What the served predictor needs to draw its interval (normalised units): sized by evaluation
    (evaluation.calibration), read by serving and the registry (read_calibration)."""

    coverage: float
    half_width: float
    half_width_with_characters: float | None = None  # pitches with characters (None: half_width for all)

    def to_dict(self) -> dict:
        return {"coverage": self.coverage, "half_width": self.half_width,
                "half_width_with_characters": self.half_width_with_characters}

    @classmethod
    def from_dict(cls, payload: dict) -> "IntervalCalibration":
        return cls(coverage=float(payload["coverage"]), half_width=float(payload["half_width"]),
                   half_width_with_characters=payload.get("half_width_with_characters"))


@dataclass(frozen=True)
class ArtifactPaths:
    """Every file a step writes for another, under the folders params.yaml's `paths` names."""

    raw_dir: Path
    prepared_dir: Path
    validation_dir: Path
    embeddings_dir: Path
    models_dir: Path
    reports_dir: Path

    @classmethod
    def of(cls, cfg: Paths, root: Path | None = None) -> "ArtifactPaths":
        """The artefacts under params.yaml's `paths`, relative ones anchored at `root` (default: the working
        directory)."""

        def anchored(path: Path | str) -> Path:
            path = Path(path)
            return path if root is None or path.is_absolute() else Path(root) / path

        return cls(raw_dir=anchored(cfg.raw_dir), prepared_dir=anchored(cfg.prepared_dir),
                   validation_dir=anchored(cfg.validation_dir), embeddings_dir=anchored(cfg.embeddings_dir),
                   models_dir=anchored(cfg.models_dir), reports_dir=anchored(cfg.reports_dir))

    # ingest
    @property
    def raw_anime(self) -> Path:
        return self.raw_dir / ANIME_TABLE

    @property
    def raw_characters(self) -> Path:
        return self.raw_dir / CHARACTERS_TABLE

    @property
    def raw_quarantine(self) -> Path:
        return self.raw_dir / QUARANTINE_TABLE

    @property
    def ingest_report(self) -> Path:
        return self.raw_dir / "ingest_report.json"

    # prepare
    @property
    def prepared_anime(self) -> Path:
        return self.prepared_dir / ANIME_TABLE

    @property
    def prepared_characters(self) -> Path:
        return self.prepared_dir / CHARACTERS_TABLE

    @property
    def prepared_quarantine(self) -> Path:
        return self.prepared_dir / QUARANTINE_TABLE

    @property
    def splits(self) -> Path:
        return self.prepared_dir / "splits.json"

    @property
    def scaler(self) -> Path:
        return self.prepared_dir / "scaler.json"

    @property
    def prepare_report(self) -> Path:
        return self.prepared_dir / "report.json"

    @property
    def data_card(self) -> Path:
        return self.reports_dir / "data_card.md"

    # validate
    @property
    def validation_summary(self) -> Path:
        return self.validation_dir / "summary.json"

    @property
    def data_docs(self) -> Path:
        return self.validation_dir / "data_docs"

    # embed
    @property
    def embeddings_manifest(self) -> Path:
        return self.embeddings_dir / "manifest.json"

    @property
    def embeddings_quarantine(self) -> Path:
        return self.embeddings_dir / QUARANTINE_TABLE

    # train
    @property
    def primary_bundle(self) -> Path:
        return self.models_dir / "model.joblib"

    @property
    def train_report(self) -> Path:
        return self.models_dir / "train_report.json"

    # backtest, evaluate, register
    @property
    def cv_metrics(self) -> Path:
        return self.reports_dir / "cv.json"

    @property
    def cv_details(self) -> Path:
        return self.reports_dir / "cv_details.json"

    @property
    def temporal_metrics(self) -> Path:
        return self.reports_dir / "temporal.json"

    @property
    def temporal_details(self) -> Path:
        return self.reports_dir / "temporal_details.json"

    @property
    def rolling_metrics(self) -> Path:
        return self.reports_dir / "rolling.json"

    @property
    def rolling_details(self) -> Path:
        return self.reports_dir / "rolling_details.json"

    @property
    def rolling_table(self) -> Path:
        return self.reports_dir / "rolling.md"

    @property
    def backtest_table(self) -> Path:
        return self.reports_dir / "backtest.md"

    @property
    def metrics(self) -> Path:
        return self.reports_dir / "metrics.json"

    @property
    def metrics_table(self) -> Path:
        return self.reports_dir / "metrics.md"

    @property
    def ablation(self) -> Path:
        return self.reports_dir / "ablation.json"

    @property
    def intervals(self) -> Path:
        return self.reports_dir / "intervals.json"

    @property
    def calibration(self) -> Path:
        return self.reports_dir / "calibration.json"

    @property
    def mlflow_runs(self) -> Path:
        return self.reports_dir / "mlflow_runs.json"

    @property
    def registration(self) -> Path:
        return self.reports_dir / "registration.json"

    @property
    def model_card(self) -> Path:
        return self.reports_dir / "model_card.md"

    @property
    def registration_key(self) -> Path:
        return self.reports_dir / "registration_key.json"

    # the side studies: paper mode, the multimodal ablation, tuning
    @property
    def paper_mode_metrics(self) -> Path:
        return self.reports_dir / "paper_mode.json"

    @property
    def paper_mode_table(self) -> Path:
        return self.reports_dir / "paper_mode.md"

    @property
    def multimodal_metrics(self) -> Path:
        return self.reports_dir / "multimodal.json"

    @property
    def multimodal_details(self) -> Path:
        return self.reports_dir / "multimodal_details.json"

    @property
    def multimodal_table(self) -> Path:
        return self.reports_dir / "multimodal.md"

    # evaluate's plots (dvc.yaml's `plots`, and artefacts of the MLflow run)
    @property
    def plots_dir(self) -> Path:
        return self.reports_dir / "plots"

    @property
    def predictions_plot_table(self) -> Path:
        return self.plots_dir / "predictions.csv"

    @property
    def predicted_vs_true_plot(self) -> Path:
        return self.plots_dir / "predicted_vs_true.png"

    @property
    def residuals_plot(self) -> Path:
        return self.plots_dir / "residuals.png"

    @property
    def learning_curves_plot_table(self) -> Path:
        return self.plots_dir / "learning_curves.csv"

    @property
    def learning_curves_plot(self) -> Path:
        return self.plots_dir / "learning_curves.png"

    @property
    def ablation_plot_table(self) -> Path:
        return self.plots_dir / "ablation.csv"

    @property
    def ablation_plot(self) -> Path:
        return self.plots_dir / "ablation.png"

    @property
    def tuning(self) -> Path:
        return self.reports_dir / "tuning.json"

    @property
    def field_ablation_metrics(self) -> Path:
        return self.reports_dir / "field_ablation.json"

    @property
    def field_ablation_table(self) -> Path:
        return self.reports_dir / "field_ablation.md"

    @property
    def finetune_metrics(self) -> Path:
        """Written outside the pipeline (a GPU run of finetune); reports/results.md shows it when present."""
        return self.reports_dir / "finetune.json"

    @property
    def results_table(self) -> Path:
        return self.reports_dir / "results.md"

    @property
    def summary_metrics(self) -> Path:
        """The few headline figures `dvc metrics show` and `dvc exp show` print (the full tables are files)."""
        return self.reports_dir / "summary.json"


@dataclass(frozen=True)
class PrimaryModel:
    """The served model. params.train names it (train.model on train.inputs) and train records it in
    train_report.json beside its bundle (models_dir/model.joblib); evaluate, MLflow tracking and the registry
    read it from that report, so none of them can disagree with the file they score or register."""

    model: str
    input_set: str

    @property
    def label(self) -> str:
        """Its run label in every table and MLflow child run: 'input_set/model'."""
        return f"{self.input_set}/{self.model}"

    def to_dict(self) -> dict[str, str]:
        return {"model": self.model, "input_set": self.input_set}

    @classmethod
    def of_report(cls, report: dict) -> "PrimaryModel":
        return cls(model=report["model"], input_set=report["input_set"])

    @classmethod
    def read(cls, paths: "ArtifactPaths") -> "PrimaryModel":
        return cls.of_report(read_json(paths.train_report))


@dataclass(frozen=True)
class MinMaxScaler:
    """Min-max scaling of the score, fitted on the train split only (no test information leaks)."""

    low: float
    high: float

    @classmethod
    def fit(cls, scores: pd.Series) -> "MinMaxScaler":
        if scores.empty:
            raise ValueError("cannot fit the score scaler: the train split is empty")
        low, high = float(scores.min()), float(scores.max())
        if high <= low:
            raise ValueError(f"cannot fit the score scaler: all train scores equal {low}")
        return cls(low=low, high=high)

    def transform(self, scores):
        return (scores - self.low) / (self.high - self.low)

    def inverse(self, normalised):
        return normalised * (self.high - self.low) + self.low

    def to_dict(self) -> dict[str, float]:
        return {"min": self.low, "max": self.high}

    @classmethod
    def from_dict(cls, payload: dict) -> "MinMaxScaler":
        return cls(low=float(payload["min"]), high=float(payload["max"]))

    @classmethod
    def read(cls, path: Path) -> "MinMaxScaler":
        return cls.from_dict(read_json(path))


def read_calibration(paths: ArtifactPaths, label: str) -> IntervalCalibration:
    """The evaluate step's calibration of run `label`; a missing file or label says which stage to rerun."""
    table = read_json(paths.calibration) if paths.calibration.exists() else {}
    if label not in table:
        raise ValueError(f"{paths.calibration}: no interval calibration for {label}; rerun `dvc repro evaluate`")
    return IntervalCalibration.from_dict(table[label])


def evaluation_runs(paths: ArtifactPaths) -> dict | None:
    """reports/mlflow_runs.json as the evaluate step wrote it (its parent run, each child and the primary's
    model URI), or None when evaluate did not track."""
    return read_json(paths.mlflow_runs) if paths.mlflow_runs.exists() else None


def save_embeddings(out_dir: Path, kind: str, row_ids: list[str], matrix: np.ndarray) -> None:
    """Write one kind as `<kind>.npy` and `<kind>_ids.json` (the row ids in matrix order), each atomically."""
    with atomic_path(Path(out_dir) / f"{kind}.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, matrix)
    write_json(Path(out_dir) / f"{kind}_ids.json", row_ids)


def load_embeddings(embeddings_dir: str | Path, kind: str) -> tuple[list[str], np.ndarray]:
    """Read one kind back: (row ids, matrix). Raises FileNotFoundError naming the file."""
    folder = Path(embeddings_dir)
    return read_json(folder / f"{kind}_ids.json"), np.load(folder / f"{kind}.npy")


def embedding_files(embeddings_dir: str | Path, kind: str) -> tuple[Path, Path]:
    folder = Path(embeddings_dir)
    return folder / f"{kind}.npy", folder / f"{kind}_ids.json"


def printable(text: str) -> str:
    """`text` with any lone surrogate (undecodable input bytes) replaced by its backslash escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def quarantine_record(
    stage: str, table: str, row_key: object, rule: str, reason: str, field: str | None = None, value: object = None
) -> dict[str, object]:
    """One quarantine row; `value` is truncated so a 100k-character synopsis does not bloat the table.

    Text is made writable first: a value read from a non-UTF-8 file holds lone surrogates, which parquet
    cannot encode; they are shown as backslash escapes (e.g. '\\udce9' for the byte 0xE9).
    """
    shown = None if value is None else printable(str(value)[:200])
    return {
        "stage": stage, "table": table, "row_key": printable(str(row_key)), "rule": rule,
        "field": field, "reason": printable(reason), "value": shown,
    }


@dataclass
class ModelBundle:
    """One fitted model and what scoring it needs: the file train writes and evaluate, predict and the
    registry read (pickled with joblib)."""

    name: str                      # the model's registry name (anipop.modeling.models)
    model: Any                     # .predict(features) -> normalised scores; None for the train-mean baseline
    inputs: list[str]              # the input kinds it was fitted on, in feature order
    input_set: str
    input_type: str                # "embeddings" or "raw" (texts and pixels)
    train_mean: float              # the train-mean baseline, normalised
    aggregation: str               # how several main characters become one vector
    image_size: int                # the raw benchmark's portrait side
    feature_dim: int | None = None
    encoders: dict = field(default_factory=dict)   # the embed manifest's encoder settings
    version: int = BUNDLE_VERSION


def records_path(bundle_path: str | Path) -> Path:
    """Where a bundle's track-record table lives: beside it, as data (anipop.modeling.track_records)."""
    path = Path(bundle_path)
    return path.with_name(f"{path.stem}.records.parquet")


@contextmanager
def records_apart(bundle: ModelBundle, path: str | Path) -> Iterator[None]:
    """For a model with track records: their table written beside `path` as parquet, and taken out of the bundle
    while the block writes the bundle: data the model reads (rows of scored anime), not state frozen inside the
    model's file, so it is inspectable and refreshed with every retraining."""
    records = getattr(bundle.model, "records", None)
    history = getattr(records, "history", None)
    if history is not None:
        with atomic_path(records_path(path)) as tmp:
            history.to_parquet(tmp, index=False)
        records.history = None
    try:
        yield
    finally:
        if history is not None:
            records.history = history


def with_records(bundle: object, path: str | Path, shown: str, hint: str = "") -> ModelBundle:
    """`bundle`, read from `path`, checked to be a ModelBundle of this version and given back its track-record
    table from beside `path`; else one line naming `shown` (and `hint`: what to do)."""
    if not isinstance(bundle, ModelBundle) or bundle.version != BUNDLE_VERSION:
        found = getattr(bundle, "version", type(bundle).__name__)
        raise ValueError(f"{shown}: not an anipop model bundle of version {BUNDLE_VERSION} (found {found}){hint}")
    records = getattr(bundle.model, "records", None)
    if records is not None and records.history is None:
        table = records_path(path)
        if not table.exists():
            raise ValueError(f"{shown}: its track-record table {table.name} is missing{hint}")
        records.attach(pd.read_parquet(table))
    return bundle


def save_bundle(bundle: ModelBundle, path: Path) -> None:
    """The bundle (joblib), its track records apart (records_apart)."""
    import joblib

    with records_apart(bundle, path), atomic_path(path) as tmp:
        joblib.dump(bundle, tmp)


LEGACY_BUNDLE_KEYS = ("name", "model", "inputs", "input_type", "train_mean")
# what the dict bundles left out where a field did not apply (the train-mean baseline had no input set)
LEGACY_DEFAULTS = {"input_set": "-", "aggregation": "mean", "image_size": 32}


def bundle_from_legacy(payload: dict) -> ModelBundle:
    """A bundle pickled as a plain dict (anipop before ModelBundle; registered versions still hold them): the
    same fields under the same names, so it is upgraded as it is read; a dict lacking one is refused."""
    missing = [key for key in LEGACY_BUNDLE_KEYS if key not in payload]
    if missing:
        raise ValueError(f"a dict model bundle without {missing}")
    known = {key: payload[key] for key in ModelBundle.__dataclass_fields__ if key in payload and key != "version"}
    return ModelBundle(**{**LEGACY_DEFAULTS, **known})


def load_bundle(path: str | Path) -> ModelBundle:
    """A bundle written by this version of anipop (or an older dict one, upgraded); anything else fails with
    one line naming the path and what was found."""
    import joblib

    try:
        bundle = joblib.load(path)
        if isinstance(bundle, dict):
            bundle = bundle_from_legacy(bundle)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - a foreign or corrupt pickle: one line, not a traceback
        raise ValueError(f"{path}: not a readable anipop model bundle ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200] if str(err) else ''}); retrain with `dvc repro train`") from None
    return with_records(bundle, path, str(path), "; retrain with `dvc repro train`")
