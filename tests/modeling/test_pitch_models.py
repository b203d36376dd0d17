"""The pitch models: each learns the pitch fields, scores a synopsis-only pitch, reads characters without their
presence moving a score; the stack is its parts; a model saved in the former one-class format still loads."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import params_in

from anipop.modeling.features import PitchInputs
from anipop.modeling.pitch import PITCH_MODEL_CLASSES, PitchModel, PitchStack, new_pitch_model


def _toy_pitch_data(n: int = 300, seed: int = 0):
    """Scores driven by the studio (metadata) and by one synopsis word (text)."""
    rng = np.random.default_rng(seed)
    good_studio = rng.random(n) < 0.5
    good_text = rng.random(n) < 0.5
    y = 0.3 + 0.3 * good_studio + 0.2 * good_text + rng.normal(0, 0.03, n)
    synopsis = [("acclaimed " if t else "generic ") + " ".join(rng.choice(["hero", "city", "rival", "school"], 8))
                for t in good_text]
    studios = [["Gold Studio"] if g else ["Tin Studio"] for g in good_studio]
    inputs = PitchInputs(synopsis=synopsis, embedding=None, metadata={"studios": studios, "type": [["TV"]] * n},
                         groups=np.arange(n), year=2000 + rng.integers(0, 20, n).astype(float))
    return inputs, np.clip(y, 0, 1)


@pytest.mark.parametrize("name", ["meta_ridge", "pitch_gbm", "pitch_stack"])
def test_pitch_models_learn_metadata_and_score_a_synopsis_only_pitch(name, tmp_path):
    cfg = params_in(tmp_path).train.pitch.model_copy(update={"min_count": 2, "gbm_n_estimators": 60,
                                                             "stack_folds": 3})
    inputs, y = _toy_pitch_data()
    fit_rows, held = np.arange(200), np.arange(200, 300)
    model = new_pitch_model(name, ["synopsis", "studios", "type", "year"], cfg, seed=0)
    model.fit(inputs.take(fit_rows), y[fit_rows])
    predicted = model.predict(inputs.take(held))
    assert np.corrcoef(predicted, y[held])[0, 1] > 0.8
    studio_only = inputs.take(held)
    gold = np.array([s == ["Gold Studio"] for s in studio_only.metadata["studios"]])
    assert predicted[gold].mean() > predicted[~gold].mean() + 0.15  # the studio moves the score
    bare = PitchInputs(synopsis=studio_only.synopsis)  # no metadata, no year: all missing, still scored
    scores = model.predict(bare)
    assert scores.shape == (100,) and np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()



def test_a_sequel_s_franchise_scores_move_its_score_and_a_pitch_that_does_not_say_them_is_still_scored(tmp_path):
    """Half the rows are sequels whose score follows their prequels' mean: both parts of pitch_stack read
    franchise_scores, a pitch without them gets a finite score in range, and a model built without the kind
    reads none."""
    cfg = params_in(tmp_path).train.pitch.model_copy(update={"min_count": 2, "gbm_n_estimators": 60,
                                                             "stack_folds": 3})
    assert "franchise_scores" in cfg.metadata_fields  # the project's recipe reads them
    inputs, y = _toy_pitch_data()
    rng = np.random.default_rng(3)
    prequel = rng.uniform(2, 9.5, len(y))
    sequel = rng.random(len(y)) < 0.5
    y = np.where(sequel, 0.1 + 0.08 * prequel + rng.normal(0, 0.02, len(y)), y)
    inputs.earlier_scores = [[float(p)] if s else [] for p, s in zip(prequel, sequel, strict=True)]
    fit_rows, held = np.arange(200), np.arange(200, 300)
    model = new_pitch_model("pitch_stack", ["synopsis", "studios", "type", "year", "franchise_scores"], cfg, seed=0)
    model.fit(inputs.take(fit_rows), y[fit_rows])
    assert model.linear.reads_franchise_scores and model.trees.reads_franchise_scores
    test = inputs.take(held)
    high, low = (model.predict(PitchInputs(synopsis=test.synopsis, metadata=test.metadata, year=test.year,
                                           earlier_scores=[[score]] * len(held))) for score in (9.0, 3.0))
    assert (high - low).mean() > 0.2  # a well-scored prequel lifts its sequel
    unsaid = model.predict(PitchInputs(synopsis=test.synopsis, metadata=test.metadata, year=test.year))
    assert np.isfinite(unsaid).all() and ((unsaid >= 0) & (unsaid <= 1)).all()
    without = new_pitch_model("pitch_stack", ["synopsis", "studios"], cfg, seed=0).fit(inputs.take(fit_rows),
                                                                                      y[fit_rows])
    assert not without.reads_franchise_scores
    np.testing.assert_array_equal(without.predict(test), without.predict(  # the scores it is given change nothing
        PitchInputs(synopsis=test.synopsis, metadata=test.metadata, year=test.year, earlier_scores=[[9.0]] * 100)))
    alone = {name: new_pitch_model(name, ["franchise_scores"], cfg, seed=0).fit(inputs.take(fit_rows), y[fit_rows])
             for name in ("meta_ridge", "pitch_gbm")}  # its own ablation set: the earlier scores alone
    for model in alone.values():
        assert np.corrcoef(model.predict(test)[sequel[held]], y[held][sequel[held]])[0, 1] > 0.8


def test_pitch_stack_blended_from_its_parts_predicts_exactly_as_its_own_fit(tmp_path):
    """train/backtest build pitch_stack from the meta_ridge and pitch_gbm fits (no second fit): same numbers."""
    cfg = params_in(tmp_path).train.pitch.model_copy(update={"min_count": 2, "gbm_n_estimators": 40,
                                                             "stack_folds": 3})
    inputs, y = _toy_pitch_data()
    inputs.embedding = np.random.default_rng(1).normal(size=(len(inputs), 8)).astype(np.float32)
    kinds = ["synopsis", "studios", "type", "year"]
    fit_rows, held = np.arange(200), np.arange(200, 300)
    own = new_pitch_model("pitch_stack", kinds, cfg, seed=0).fit(inputs.take(fit_rows), y[fit_rows])
    parts = [new_pitch_model(name, kinds, cfg, seed=0).fit(inputs.take(fit_rows), y[fit_rows])
             for name in ("meta_ridge", "pitch_gbm")]
    blended = PitchStack.of(*parts)
    assert blended.name == "pitch_stack" and parts[1].name == "pitch_gbm"  # the parts are left as they were
    np.testing.assert_array_equal(blended.predict(inputs.take(held)), own.predict(inputs.take(held)))
    with pytest.raises(ValueError, match="same kinds"):
        PitchStack.of(parts[0], new_pitch_model("pitch_gbm", kinds[:2], cfg, seed=0))

CHARACTER_KINDS = ["synopsis", "studios", "type", "year", "character_description", "portrait"]


def _with_characters(inputs: PitchInputs, y: np.ndarray, share: float, signal: float = 0.25, seed: int = 1):
    """Characters for a share of the rows (a seed apart from _toy_pitch_data's): their quality c moves the score
    by `signal` x c, and having them adds 0.15 (on MAL the anime with characters are popular shows). Blocks in
    features.assemble's layout: vector + presence."""
    rng = np.random.default_rng(seed)
    n = len(inputs)
    has = rng.random(n) < share
    c = rng.random(n)
    description = np.column_stack([c + rng.normal(0, 0.05, n), rng.normal(0, 1, (n, 3)), np.ones(n)])
    portrait = np.column_stack([c, rng.normal(0, 0.1, (n, 2)), np.ones(n)])
    inputs.characters = {"character_description": np.where(has[:, None], description, 0.0).astype(np.float32),
                         "portrait": np.where(has[:, None], portrait, 0.0).astype(np.float32)}
    return inputs, y + has * (0.15 + signal * c), has, c


def _character_cfg(tmp_path):
    return params_in(tmp_path).train.pitch.model_copy(update={"min_count": 2, "gbm_n_estimators": 60,
                                                              "stack_folds": 3, "character_alpha": 1.0})


def _hidden(inputs: PitchInputs) -> PitchInputs:
    """The same pitches with no characters given."""
    return PitchInputs(synopsis=inputs.synopsis, metadata=inputs.metadata, year=inputs.year)


def test_pitch_stack_reads_a_rows_characters_and_leaves_rows_without_them_as_they_were(tmp_path):
    """One model for every pitch: a row's characters move its score; a row without characters
    scores exactly as with the switch off, and as inputs that carry no characters at all."""
    inputs, y = _toy_pitch_data()
    inputs, y, has, c = _with_characters(inputs, y, share=0.3)
    fit_rows, held = np.arange(200), np.arange(200, 300)
    model = new_pitch_model("pitch_stack", CHARACTER_KINDS, _character_cfg(tmp_path), seed=0)
    model.fit(inputs.take(fit_rows), y[fit_rows])
    off = new_pitch_model("pitch_stack", CHARACTER_KINDS[:4], _character_cfg(tmp_path), seed=0)
    off.fit(inputs.take(fit_rows), y[fit_rows])
    test = inputs.take(held)
    without = ~has[held]
    assert model.reads_characters and model.character_weight > 0
    assert not model.character_correction(test)[without].any()  # exactly 0 where a row has no characters
    predicted = model.predict(test)
    np.testing.assert_array_equal(predicted[without], off.predict(test)[without])
    np.testing.assert_array_equal(model.predict(_hidden(test)), off.predict(test))
    rows = np.where(has[held])[0]
    scores = []
    for quality in (0.0, 1.0):  # the same rows with dull, then with great characters
        changed = test.take(rows)
        changed.characters = {kind: block.copy() for kind, block in changed.characters.items()}
        changed.characters["character_description"][:, 0] = quality
        changed.characters["portrait"][:, 0] = quality
        scores.append(model.predict(changed))
    assert (scores[1] != scores[0]).all() and (predicted[rows] != scores[0]).all()
    assert (scores[1] - scores[0]).mean() > 0.03  # in the direction the characters carry


@pytest.mark.parametrize("signal", [0.25, 0.0])
def test_having_characters_does_not_move_the_mean_score(signal, tmp_path):
    """Presence-neutral: rows with characters score 0.15 higher for having them
    (the MAL sample's popular shows); switching their characters on or off does not shift the mean prediction
    over many held rows beyond noise, whether the characters carry signal or are pure noise."""
    inputs, y = _toy_pitch_data(600)
    inputs, y, has, c = _with_characters(inputs, y, share=0.4, signal=signal)
    if not signal:  # random embeddings: nothing to learn but the presence
        rng = np.random.default_rng(5)
        for block in inputs.characters.values():
            block[has, :-1] = rng.normal(0, 1, (int(has.sum()), block.shape[1] - 1))
    fit_rows, held = np.arange(400), np.arange(400, 600)
    model = new_pitch_model("pitch_stack", CHARACTER_KINDS, _character_cfg(tmp_path), seed=0)
    model.fit(inputs.take(fit_rows), y[fit_rows])
    assert model.trees.characters.model is not None  # fitted on the ~160 training rows with characters
    rows = inputs.take(held[has[held]])
    moved = model.predict(rows) - model.predict(_hidden(rows))
    assert abs(moved.mean()) < 0.02
    if signal:
        assert np.corrcoef(moved, c[held][has[held]])[0, 1] > 0.5  # each row moves by what its characters are like


def test_too_few_rows_with_characters_leave_no_character_correction_and_the_model_fits(tmp_path, caplog):
    inputs, y = _toy_pitch_data(60)
    inputs, y, has, _ = _with_characters(inputs, y, share=0.0)
    for block in inputs.characters.values():  # 4 rows with characters: under 2 x stack_folds (6)
        block[:4] = 1.0
    with caplog.at_level("INFO", logger="anipop.modeling.pitch.characters"):
        model = new_pitch_model("pitch_stack", CHARACTER_KINDS, _character_cfg(tmp_path), seed=0).fit(inputs, y)
    assert model.trees.characters.model is None and not model.reads_characters
    assert "4 training rows have characters (< 2 x stack_folds = 6)" in caplog.text
    assert not model.character_correction(inputs).any()
    scores = model.predict(inputs)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


def test_each_catalog_pitch_model_is_one_class_with_the_shape_serving_reads(tmp_path):
    from anipop.core.model_catalog import PITCH_MODELS

    cfg = params_in(tmp_path).train.pitch.model_copy(update={"min_count": 2, "gbm_n_estimators": 20, "stack_folds": 3})
    inputs, y = _toy_pitch_data(120)
    assert sorted(PITCH_MODEL_CLASSES) == sorted(PITCH_MODELS)
    for name, cls in PITCH_MODEL_CLASSES.items():
        model = new_pitch_model(name, ["synopsis", "studios", "year"], cfg, seed=0).fit(inputs, y)
        assert type(model) is cls and model.name == name and isinstance(model, PitchModel)
        assert set(model.vocabulary) == {"studios"} and model.uses_embedding is False
        assert model.reads_characters is False and model.character_weight == 0.0
    with pytest.raises(ValueError, match="unknown pitch model 'pitch_forest'"):
        new_pitch_model("pitch_forest", ["synopsis"], cfg)


def test_a_pitch_stack_saved_by_the_former_one_class_code_loads_as_its_class_and_scores_the_same():
    """The registry holds champions written before the split (their files name pitch_models.PitchRegressor and its
    private parts): loaded through the same audit, upgraded to PitchStack, they serve their scores unchanged."""
    import json
    import zipfile
    from pathlib import Path

    from anipop.serving.served_bundle import load_served_bundle

    folder = Path(__file__).parent / "former_pitch_stack"
    with zipfile.ZipFile(folder / "model.skops") as archive:
        assert "anipop.modeling.pitch_models" in archive.read("schema.json").decode()  # a file of the former format
    bundle = load_served_bundle(folder / "model.skops")
    held = json.loads((folder / "held.json").read_text())
    rows = held["rows"]
    inputs = PitchInputs(synopsis=rows["synopsis"], embedding=np.asarray(rows["embedding"], np.float32),
                         metadata=rows["metadata"], groups=np.asarray(rows["groups"]), year=np.asarray(rows["year"]),
                         characters={k: np.asarray(v, np.float32) for k, v in rows["characters"].items()})
    model = bundle.model
    assert isinstance(model, PitchStack) and isinstance(model, PitchModel)
    assert model.reads_characters and model.character_weight > 0 and model.records.history is not None
    # equal to float32's last bits: the embedding parts compute in float32, whose sums another CPU family (or
    # instruction set) orders differently (seen: 6 of 60 scores 1.5e-8 apart on an AMD EPYC with AVX-512)
    np.testing.assert_allclose(model.predict(inputs), np.asarray(held["scores"]), rtol=1e-6, atol=0)


def test_a_former_format_bundle_missing_its_parts_is_one_line_naming_the_file(tmp_path):
    """A file that names the former class but lacks what it held (written by hand, or cut short) fails as any
    unreadable model does: a ValueError naming the file, never a KeyError from deep in the upgrade."""
    from anipop.core.artifacts import ModelBundle
    from anipop.modeling.pitch.legacy import PitchRegressor
    from anipop.serving.served_bundle import load_served_bundle, save_served_bundle

    hollow = PitchRegressor()
    hollow.__dict__.update({"name": "pitch_gbm", "kinds": ["synopsis"], "seed": 0})  # no settings, no trees
    bundle = ModelBundle(name="pitch_gbm", model=hollow, inputs=["synopsis"], input_set="synopsis",
                         input_type="pitch", train_mean=0.5, aggregation="mean", image_size=8)
    save_served_bundle(bundle, tmp_path / "model.skops")
    with pytest.raises(ValueError, match=r"^model\.skops: not a readable anipop model \(KeyError: 'cfg'\)$"):
        load_served_bundle(tmp_path / "model.skops")
    hollow.__dict__["name"] = "pitch_forest"
    save_served_bundle(bundle, tmp_path / "model.skops")
    with pytest.raises(ValueError, match="not a readable anipop model .*unknown model 'pitch_forest'"):
        load_served_bundle(tmp_path / "model.skops")
