"""Raw pitch -> score on MAL's 1-10 scale with an interval, shared by the CLI and the MLflow pyfunc.

The pyfunc bundles everything a prediction needs — the fitted model, the encoder settings, the score scaler
and the conformal interval — so `mlflow models serve` needs no project checkout and no params.yaml.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from anipop.core.artifacts import ArtifactPaths, IntervalCalibration, MinMaxScaler, ModelBundle, load_bundle
from anipop.core.config import ImageEncoderParams, Params, TextEncoderParams
from anipop.core.input_kinds import IMAGE_KIND, KINDS, PITCH_INPUT
from anipop.core.utils import read_json, write_json
from anipop.data.franchise_scores import FRANCHISE_FIELD
from anipop.data.metadata import METADATA_FIELDS
from anipop.modeling.features import (
    ANIME_KINDS,
    CHARACTER_KINDS,
    PITCH_CHARACTER_KINDS,
    PitchInputs,
    features_from_vectors,
)
from anipop.modeling.pitch import PitchModel, reads_characters
from anipop.serving.model_loading import PICKLE_OPT_IN, pickles_allowed
from anipop.serving.pitch import UNSAVED_LIMITS, Pitch, PitchLimits
from anipop.serving.served_bundle import SERVED_BUNDLE, load_served_bundle, save_served_bundle
from anipop.serving.text_vectors import encode_texts

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("score", "score_low", "score_high", "baseline_score", "coverage")
NOTES_COLUMN = "notes"  # per pitch: what the model did not read, and values new to it (empty when none)
SHIPPED_GRAPHS = "onnx"  # the predictor folder's copy of the text encoder graph (PitchPredictor.save)


def graph_cache() -> Path:
    """Where a predictor without a shipped graph builds one: the user's temp folder, never the model's (it may be
    read-only where the model is served)."""
    return Path(tempfile.gettempdir()) / "anipop-onnx"


@dataclass
class PitchPredictor:
    """Embeds pitches with the encoders the model was trained on, then predicts with an interval."""

    bundle: ModelBundle
    text: TextEncoderParams
    image: ImageEncoderParams
    scaler: MinMaxScaler
    half_width: float
    coverage: float
    device: str = "auto"
    limits: PitchLimits = UNSAVED_LIMITS  # what the served model saved (from_dir); a model logged now saves params.yaml's
    half_width_with_characters: float | None = None  # pitches with characters (None: half_width for all)
    onnx_dir: str | None = None  # where the text encoder's ONNX graph is (cpu_runtime onnx*); never saved: a path
    shipped_onnx_dir: str | None = None  # the loaded model's own graphs: read, never written (from_dir)

    @classmethod
    def from_dir(cls, folder: str | Path) -> "PitchPredictor":
        """A predictor saved by `save`: JSON settings and the bundle as data (no pickle: served_bundle)."""
        folder = Path(folder)
        settings = read_json(folder / "predictor.json")
        # the registered model's graph; one built by other tool versions (or none) is built on first use, as the embed
        # step does, in the temp folder: never in the model's folder
        shipped = folder / SHIPPED_GRAPHS
        return cls(bundle=_read_bundle(folder),
                   text=TextEncoderParams.model_validate(settings["text"]),
                   image=ImageEncoderParams.model_validate(settings["image"]),
                   scaler=MinMaxScaler.from_dict(settings["scaler"]), half_width=settings["half_width"],
                   coverage=settings["coverage"], device=settings.get("device", "auto"),
                   limits=PitchLimits.from_dict(settings.get("limits")),
                   half_width_with_characters=settings.get("half_width_with_characters"),
                   onnx_dir=str(graph_cache()), shipped_onnx_dir=str(shipped) if shipped.is_dir() else None)

    def save(self, folder: Path, ship_text_graph: bool = False) -> None:
        """predictor.json and the bundle as data; with ship_text_graph, the text encoder's ONNX graph too, so the
        served model embeds with the very graph its training vectors came from, without building one at first
        request."""
        folder.mkdir(parents=True, exist_ok=True)
        save_served_bundle(self.bundle, folder / SERVED_BUNDLE)
        text_encoder = self._encoders[0] if ship_text_graph else None
        if text_encoder is not None and text_encoder.graph is not None:
            shutil.copytree(text_encoder.graph.parent, folder / SHIPPED_GRAPHS / text_encoder.graph.parent.name)
        write_json(folder / "predictor.json", {
            "text": self.text.model_dump(mode="json"), "image": self.image.model_dump(mode="json"),
            "scaler": self.scaler.to_dict(), "half_width": self.half_width, "coverage": self.coverage,
            "device": self.device, "limits": self.limits.model_dump(),
            "half_width_with_characters": self.half_width_with_characters})

    @cached_property
    def _encoders(self):
        """(text, image) encoders for the kinds the model uses, loaded once on first prediction."""
        from anipop.encoders.image import load_image_encoder
        from anipop.encoders.text import choose_device, load_text_encoder

        device = choose_device(self.device)
        kinds = set(self.bundle.inputs)
        with _quiet_weight_loading():
            text = load_text_encoder(self.text.model, device, pooling=self.text.pooling,
                                     max_length=self.text.max_length,
                                     cpu_runtime=self.text.cpu_runtime,
                                     onnx_dir=self.onnx_dir or graph_cache(),
                                     shipped_onnx_dir=self.shipped_onnx_dir) if kinds - {IMAGE_KIND} else None
            image = load_image_encoder(self.image, device) if IMAGE_KIND in kinds else None
        return text, image

    def _vectors(self, pitch: Pitch, kinds: list[str] | None = None) -> dict[str, np.ndarray]:
        """The pitch's vectors of `kinds` (default: every kind the model reads), embedded as the embed step did."""
        text, image = self._encoders
        kinds, vectors = self.bundle.inputs if kinds is None else kinds, {}
        chars = pitch.characters
        for kind in kinds:  # the embedded kinds of anipop.core.input_kinds, as the embed step made them
            spec = KINDS[kind]
            if spec.owner == "anime" and spec.modality == "text":
                vectors[kind] = encode_texts(text, [getattr(pitch, spec.column)])[0]
            elif spec.modality == "text":  # one text per main character: its name or its description
                values = [getattr(c, spec.column) for c in chars]
                vectors[kind] = encode_texts(text, values) if values else np.zeros((0, text.dim), np.float32)
            elif spec.modality == "image":
                portraits = [c.portrait for c in chars if c.portrait is not None]
                vectors[kind] = image.encode(portraits) if portraits else np.zeros((0, image.dim), np.float32)
        return vectors

    def _pitch_inputs(self, pitches: list[Pitch]):
        """A pitch model's inputs: texts, their embedding when it reads one, metadata (absent = missing), and
        the characters' blocks aggregated by the code the dataset's rows went through (features.assemble): a
        pitch without characters gets the all-zero block and presence 0, as a training anime without them."""
        model = self.bundle.model  # a PitchModel (None while the rows a model is fitted on are built)
        embedding = None
        if isinstance(model, PitchModel) and model.uses_embedding:
            text, _ = self._encoders
            embedding = encode_texts(text, [p.synopsis for p in pitches])
        fields = [k for k in self.bundle.inputs if k in METADATA_FIELDS]
        # no embedding of characters that cannot move the score (a character correction of weight 0)
        character_kinds = [k for k in self.bundle.inputs if k in PITCH_CHARACTER_KINDS] \
            if reads_characters(model) else []
        characters = {kind: np.vstack([features_from_vectors(self._vectors(p, [kind]), [kind], self.bundle.aggregation)
                                       for p in pitches]) for kind in character_kinds}
        return PitchInputs(synopsis=[p.synopsis for p in pitches], embedding=embedding,
                           metadata={f: [p.metadata.get(f, []) for p in pitches] for f in fields},
                           year=np.array([np.nan if p.year is None else p.year for p in pitches], dtype=float),
                           duration=np.array([np.nan if p.duration is None else p.duration for p in pitches],
                                             dtype=float),
                           characters=characters, earlier_scores=[p.earlier_scores for p in pitches])

    def ignored_inputs(self, pitches: list[Pitch]) -> str | None:
        """One line saying which given inputs this model does not read (None: it reads all it was given).

        A synopsis-only champion scores a pitch with characters exactly as without them; the producer who drew
        the portraits should be told so rather than believe they counted.
        """
        reads = set(self.bundle.inputs) if self.reads_characters() else set(self.bundle.inputs) - set(CHARACTER_KINDS)
        reads = reads if self.reads_franchise_scores() else reads - {FRANCHISE_FIELD}
        given = sum(len(p.characters) for p in pitches)
        notes = []
        if given and not reads & set(CHARACTER_KINDS):
            notes.append(f"the {given} character(s) given")
        unread = sorted({f for p in pitches for f, values in p.metadata.items() if values and f not in reads}
                        | ({"year"} if any(p.year is not None for p in pitches) and "year" not in reads else set())
                        | ({"duration"} if any(p.duration is not None for p in pitches) and "duration" not in reads
                           else set())
                        | ({FRANCHISE_FIELD} if any(p.earlier_scores is not None for p in pitches)
                           and FRANCHISE_FIELD not in reads else set()))
        if unread:
            notes.append(f"the field(s) {', '.join(unread)}")
        late = sorted({value for p in pitches for value in p.post_release})
        said = (f"this model ({self.bundle.name or 'unnamed'}) reads only {', '.join(sorted(reads))}: "
                f"{' and '.join(notes)} did not change the score") if notes else None
        if late:
            dropped = (f"{', '.join(late)}: known only after release (MAL adds it once a show has won), so it was "
                       f"left out, as in training")
            said = f"{said}; {dropped}" if said else dropped
        return said

    def unknown_values(self, pitch: Pitch) -> dict[str, list[str]]:
        """The pitch's metadata values outside the model's vocabulary (seen fewer than train.pitch.min_count times
        in training): encoded as the field's unknown, which a producer naming a new studio should be told."""
        if not isinstance(self.bundle.model, PitchModel):  # only the pitch models read metadata values
            return {}
        vocabulary = self.bundle.model.vocabulary
        known = {field: set(vocabulary[field]) for field in pitch.metadata if field in vocabulary}
        return {field: new for field, values in pitch.metadata.items() if field in known
                and (new := [v for v in values if v not in known[field]])}

    def pitch_notes(self, pitch: Pitch) -> str:
        """One line per pitch for the REST answer's `notes` column (empty when there is nothing to say)."""
        parts = [self.ignored_inputs([pitch]) or ""]
        unknown = self.unknown_values(pitch)
        if unknown:
            parts.append("new to this model, encoded as unknown: " + "; ".join(
                f"{field} {', '.join(values[:5])}" + (f" (+{len(values) - 5} more)" if len(values) > 5 else "")
                for field, values in unknown.items()))
        return "; ".join(part for part in parts if part)

    def reads_franchise_scores(self) -> bool:
        """Whether a pitch's franchise_scores can move its score: only a pitch model fitted with the franchise
        record reads them."""
        model = self.bundle.model
        return isinstance(model, PitchModel) and model.reads_franchise_scores

    def reads_characters(self) -> bool:
        """Whether a pitch's characters can move its score: the model reads a character kind and, for a pitch
        model, fitted a character correction that is not switched off (pitch.PitchModel.reads_characters)."""
        return bool(set(self.bundle.inputs) & set(CHARACTER_KINDS)) and reads_characters(self.bundle.model)

    def interval_half_width(self, pitch: Pitch) -> float:
        """The conformal half-width for the modalities this pitch brings (characters or synopsis only)."""
        if pitch.characters and self.reads_characters() and self.half_width_with_characters is not None:
            return self.half_width_with_characters
        return self.half_width

    def predict(self, pitches: list[Pitch]) -> pd.DataFrame:
        """Scores on the 1-10 scale with the conformal interval and the train-mean baseline beside them."""
        if self.bundle.input_type == PITCH_INPUT:
            rows = self._pitch_inputs(pitches)
        else:
            rows = np.vstack([features_from_vectors(self._vectors(p), self.bundle.inputs, self.bundle.aggregation)
                              for p in pitches])
        # float64 like the interval: a float32 score clipped to a bound would round past its own interval
        normalised = np.clip(np.asarray(self.bundle.model.predict(rows), dtype=np.float64), 0.0, 1.0)
        width = np.array([self.interval_half_width(p) for p in pitches])
        low, high = np.clip(normalised - width, 0, 1), np.clip(normalised + width, 0, 1)
        return pd.DataFrame({
            "score": self.scaler.inverse(normalised), "score_low": self.scaler.inverse(low),
            "score_high": self.scaler.inverse(high),
            "baseline_score": self.scaler.inverse(float(self.bundle.train_mean)),
            "coverage": self.coverage,
        }).round(4).assign(**{NOTES_COLUMN: [self.pitch_notes(p) for p in pitches]})


LEGACY_BUNDLE = "model.joblib"  # what older anipop logged: a pickle, read only with the operator's opt-in


def _read_bundle(folder: Path) -> ModelBundle:
    """The predictor folder's bundle: data (model.skops), or an older anipop's pickle when the operator allowed it."""
    if (folder / SERVED_BUNDLE).exists() or not (folder / LEGACY_BUNDLE).exists():
        return load_served_bundle(folder / SERVED_BUNDLE)
    if not pickles_allowed():
        raise ValueError(f"{LEGACY_BUNDLE}: a model pickled by an older anipop; set {PICKLE_OPT_IN}=true to load it "
                         f"if you trust every writer of the registry")
    return load_bundle(folder / LEGACY_BUNDLE)


@contextmanager
def _quiet_weight_loading():
    """No "Loading weights" progress bar from transformers while a pitch model loads its encoder: one bar per
    `anipop predict` (and per served model) says nothing to the user and clutters the score's output."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # no transformers: nothing draws a bar
        yield
        return
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def log_pitch_model(params: Params, calibration: IntervalCalibration, bundle_path: str | Path | None = None,
                    pip_requirements: list[str] | None = None, ship_text_graph: bool = False):
    """Log a model (default: the primary, models_dir/model.joblib) as a pitch-taking pyfunc in the active
    MLflow run; return its ModelInfo. Its interval is the evaluate step's `calibration` (anipop.evaluation.calibration).
    `pip_requirements` skips MLflow's inference (a subprocess per model)."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from anipop.serving.model_code import PITCH_MODEL_CODE

    paths = ArtifactPaths.of(params.paths)
    bundle = load_bundle(bundle_path or paths.primary_bundle)
    pitch_model = bundle.input_type == PITCH_INPUT  # synopsis + metadata (anipop.modeling.pitch)
    if not pitch_model and not set(bundle.inputs) <= {*ANIME_KINDS, *CHARACTER_KINDS}:
        raise ValueError(f"model {bundle.name} is not embedding-based; only those can score raw pitches")
    predictor = PitchPredictor(
        bundle=bundle, text=params.embed.text, image=params.embed.image,
        scaler=MinMaxScaler.read(paths.scaler),
        half_width=calibration.half_width, coverage=calibration.coverage, device=params.embed.device,
        limits=configured_limits(params),
        half_width_with_characters=calibration.half_width_with_characters, onnx_dir=str(params.paths.onnx_dir))
    # no input schema on purpose: MLflow's enforcement silently drops columns it does not know (a client's
    # misspelt `charaters` would vanish); parse_pitches checks every field itself and rejects unknown ones
    signature = ModelSignature(inputs=None, outputs=Schema([*(ColSpec("double", name) for name in OUTPUT_COLUMNS),
                                                            ColSpec("string", NOTES_COLUMN)]))
    example = pd.DataFrame({"synopsis": ["A retired bounty hunter takes one last job aboard a failing starship, "
                                         "where an old rival waits with a debt she never meant to repay."],
                            "characters": [json.dumps([{"name": "Kaede", "description": "a tired bounty hunter"}])],
                            **({"genres": ["Action, Sci-Fi"], "type": ["TV"], "source": ["Original"]}
                               if pitch_model else {})})
    staging = Path(tempfile.mkdtemp(prefix="anipop-predictor-"))
    try:
        predictor.save(staging / "predictor", ship_text_graph=ship_text_graph)
        return mlflow.pyfunc.log_model(  # from code: the registry holds a script and data, no pickle
            name="model", python_model=str(PITCH_MODEL_CODE), artifacts={"predictor": str(staging / "predictor")},
            signature=signature, input_example=example, pip_requirements=pip_requirements)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def configured_limits(params: Params) -> PitchLimits:
    """The request limits params.yaml sets (`serving`, `prepare.max_synopsis_chars`): what a model logged now
    enforces, and what `anipop predict` checks before loading one."""
    return PitchLimits.of(params.serving, params.prepare.max_synopsis_chars)


def served_limits(model) -> PitchLimits:
    """The request limits a loaded anipop pyfunc enforces (UNSAVED_LIMITS for one that saved none)."""
    try:
        predictor = model.unwrap_python_model().predictor
    except Exception:  # noqa: BLE001 - another flavour or an older model: its limits are unknown
        return UNSAVED_LIMITS
    return predictor.limits if isinstance(getattr(predictor, "limits", None), PitchLimits) else UNSAVED_LIMITS


