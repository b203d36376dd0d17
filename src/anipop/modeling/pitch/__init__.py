"""The pitch models: one class each over shared pitch encodings, the stack composed of its parts.

- meta_ridge (MetaRidge): one ridge over the synopsis TF-IDF, its embedding and the metadata;
- pitch_gbm (PitchGBM): LightGBM over the metadata, track records and out-of-fold text predictions, plus the
  character correction;
- pitch_stack (PitchStack): their blend.

Every one has the PitchModel shape (protocol), which is all serving reads. Inputs are a PitchInputs, built by
`features.pitch_inputs` for the dataset and by the predictor for a served pitch, so both go through one encoder;
a kind the model was trained on that a pitch lacks is encoded as missing: a synopsis-only pitch is scored.
"""

from __future__ import annotations

from anipop.core.model_catalog import PITCH_MODELS
from anipop.modeling.pitch.meta_ridge import MetaRidge
from anipop.modeling.pitch.pitch_gbm import PitchGBM
from anipop.modeling.pitch.pitch_stack import PitchStack
from anipop.modeling.pitch.protocol import PitchModel, reads_characters

PITCH_MODEL_CLASSES: dict[str, type[PitchModel]] = {cls.name: cls for cls in (MetaRidge, PitchGBM, PitchStack)}
if set(PITCH_MODEL_CLASSES) != set(PITCH_MODELS):  # the model catalog names them; each name has exactly one class
    raise ImportError(f"pitch model classes {sorted(PITCH_MODEL_CLASSES)} != the model catalog {sorted(PITCH_MODELS)}")

__all__ = ["PITCH_MODEL_CLASSES", "MetaRidge", "PitchGBM", "PitchModel", "PitchStack", "new_pitch_model",
           "reads_characters"]


def new_pitch_model(name: str, kinds: list[str], cfg, seed: int = 0) -> PitchModel:
    """The unfitted pitch model `name` on `kinds` (cfg: PitchModelParams)."""
    if name not in PITCH_MODEL_CLASSES:
        raise ValueError(f"unknown pitch model {name!r}; expected one of {sorted(PITCH_MODEL_CLASSES)}")
    return PITCH_MODEL_CLASSES[name](kinds, cfg, seed)
