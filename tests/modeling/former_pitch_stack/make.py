"""Writes this folder: a pitch_stack saved by the former one-class `PitchRegressor` (the code of commit 7cbdd0c,
read with `git show`), its scores on held rows, and those rows. tests/modeling/test_pitch_models.py loads it with
today's code and asks for the same scores. Run from the repository root: python tests/modeling/former_pitch_stack/make.py
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

FORMER_COMMIT = "7cbdd0c"
FORMER_MODULE = "anipop.modeling.pitch_models"
HERE = Path(__file__).parent
KNOBS_ADDED_SINCE = ("tfidf_min_df", "embedding_weight")  # train.pitch knobs the former code did not have
KINDS = ["synopsis", "studios", "type", "year", "character_description", "portrait"]


def toy_rows(n: int = 240, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Scores driven by the studio, one synopsis word, the embedding and (for 40 % of rows) the characters."""
    rng = np.random.default_rng(seed)
    studio, word, has, quality = rng.random(n) < 0.5, rng.random(n) < 0.5, rng.random(n) < 0.4, rng.random(n)
    embedding = rng.normal(0, 1, (n, 6)).astype(np.float32)
    y = 0.3 + 0.2 * studio + 0.15 * word + 0.05 * embedding[:, 0] + has * 0.2 * quality + rng.normal(0, 0.03, n)
    description = np.column_stack([quality + rng.normal(0, 0.05, n), rng.normal(0, 1, (n, 2)), np.ones(n)])
    portrait = np.column_stack([quality, rng.normal(0, 0.1, (n, 2)), np.ones(n)])
    rows = {"synopsis": [("acclaimed " if w else "generic ") + " ".join(rng.choice(["hero", "city", "rival"], 6))
                         for w in word],
            "embedding": embedding.tolist(),
            "metadata": {"studios": [["Gold"] if s else ["Tin"] for s in studio], "type": [["TV"]] * n},
            "year": (2000 + rng.integers(0, 20, n)).astype(float).tolist(),
            "groups": list(range(n)),
            "characters": {"character_description": np.where(has[:, None], description, 0.0).tolist(),
                           "portrait": np.where(has[:, None], portrait, 0.0).tolist()}}
    return rows, np.clip(y, 0, 1)


def pitch_inputs(rows: dict, take: slice):
    from anipop.modeling.features import PitchInputs

    return PitchInputs(synopsis=rows["synopsis"][take], embedding=np.asarray(rows["embedding"], np.float32)[take],
                       metadata={f: v[take] for f, v in rows["metadata"].items()},
                       groups=np.asarray(rows["groups"])[take], year=np.asarray(rows["year"])[take],
                       characters={k: np.asarray(v, np.float32)[take] for k, v in rows["characters"].items()})


def main() -> None:
    from anipop.core.artifacts import ModelBundle
    from anipop.core.config import PitchModelParams, TrackRecordParams
    from anipop.serving import served_bundle

    source = subprocess.run(["git", "show", f"{FORMER_COMMIT}:src/anipop/modeling/pitch_models.py"],
                            check=True, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pitch_models.py"
        path.write_text(source, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(FORMER_MODULE, path)
        former = importlib.util.module_from_spec(spec)
        sys.modules[FORMER_MODULE] = former
        spec.loader.exec_module(former)
    cfg = PitchModelParams(min_count=2, gbm_n_estimators=30, gbm_seeds=2, stack_folds=3, character_alpha=1.0,
                           track_records=TrackRecordParams(enabled=True, fields=("studios",)))
    rows, y = toy_rows()
    fit, held = slice(0, 180), slice(180, None)
    model = former.PitchRegressor("pitch_stack", KINDS, cfg, seed=0).fit(pitch_inputs(rows, fit), y[fit])
    assert model.character_weight > 0 and model.records is not None, "the fixture must hold every part"
    bundle = ModelBundle(name="pitch_stack", model=model, inputs=KINDS, input_set="all_inputs", input_type="pitch",
                         train_mean=float(y[fit].mean()), aggregation="mean", image_size=8)
    former_types = tuple(f"{FORMER_MODULE}.{name}" for name in
                         ("PitchRegressor", "_CharacterRidge", "_EmbeddingRidge", "_TextRidge"))
    current_state = PitchModelParams.__getstate__

    def former_state(settings: PitchModelParams) -> dict:
        """The settings as the former code saved them: without the knobs added with the split."""
        state = current_state(settings)
        state["__dict__"] = {k: v for k, v in state["__dict__"].items() if k not in KNOBS_ADDED_SINCE}
        state["__pydantic_fields_set__"] = [k for k in state["__pydantic_fields_set__"] if k not in KNOBS_ADDED_SINCE]
        return state

    with mock.patch.object(served_bundle, "SERVED_TYPES", served_bundle.SERVED_TYPES + former_types), \
            mock.patch.object(PitchModelParams, "__getstate__", former_state):
        served_bundle.save_served_bundle(bundle, HERE / "model.skops")
    held_rows = {key: (value[held] if isinstance(value, list) else {k: v[held] for k, v in value.items()})
                 for key, value in rows.items()}
    (HERE / "held.json").write_text(json.dumps({"rows": held_rows,
                                                "scores": model.predict(pitch_inputs(rows, held)).tolist()}))


if __name__ == "__main__":
    main()
