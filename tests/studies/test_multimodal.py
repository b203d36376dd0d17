"""One joint model for pitches with and without characters: presence masks, modality dropout, the ablation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import knobs, request_limits
from fixtures_training import toy_params, write_toy_dataset

from anipop.core.artifacts import load_embeddings, save_embeddings
from anipop.data.schema import PREPARED_CHARACTERS, read_table, write_table
from anipop.modeling.features import build_features, features_from_vectors
from anipop.modeling.modality import kind_dims, kind_slices, maskable_slices, modality_dropout, with_characters
from anipop.studies.multimodal_ablation import run_multimodal_ablation

ALL = ["synopsis", "character_description", "character_name", "portrait"]


def keep_characters_of(params, anime_ids: set[int]) -> None:
    """Leave characters (table and every character embedding) only to `anime_ids`: the rest lack the modality."""
    prepared, embeddings = Path(params.paths.prepared_dir), Path(params.paths.embeddings_dir)
    chars = read_table(PREPARED_CHARACTERS, prepared / "characters.parquet")
    write_table(PREPARED_CHARACTERS, chars[chars["anime_id"].isin(anime_ids)], prepared / "characters.parquet")
    for kind in ALL[1:]:
        ids, matrix = load_embeddings(embeddings, kind)
        keep = [i for i, row in enumerate(ids) if int(row.split(":")[0]) in anime_ids]
        save_embeddings(embeddings, kind, [ids[i] for i in keep], matrix[keep])


def test_missing_modalities_are_zero_blocks_with_a_presence_column(tmp_path):
    params = toy_params(tmp_path)
    anime = write_toy_dataset(params, count=20)
    ids = anime["anime_id"].to_numpy()
    keep_characters_of(params, set(ids[::2]))
    features = build_features(params.paths.embeddings_dir, ids, ALL)
    dims = kind_dims(params.paths.embeddings_dir, ALL)
    slices = kind_slices(ALL, dims)
    assert features.shape[1] == sum(dims.values()) + 3  # one presence column per character kind
    np.testing.assert_array_equal(with_characters(features, ALL, dims), np.arange(20) % 2 == 0)
    absent = features[1]
    for cut in maskable_slices(ALL, dims):
        assert not absent[cut].any()                     # zeros and presence 0
        assert features[0, cut.stop - 1] == 1.0
    # a pitch without characters is featurised exactly like an anime without them
    synopsis = features[1, slices["synopsis"]]
    pitch = features_from_vectors({"synopsis": synopsis, **{k: np.zeros((0, dims[k])) for k in ALL[1:]}}, ALL)
    np.testing.assert_array_equal(pitch[0], absent)


def test_modality_dropout_hides_whole_modalities_like_a_pitch_without_them():
    batch = torch.ones(400, 7)
    missing = torch.full((7,), -5.0)
    cuts = [slice(3, 5), slice(5, 7)]
    generator = torch.Generator().manual_seed(0)
    dropped = modality_dropout(batch, missing, cuts, 0.3, generator)
    assert torch.equal(batch, torch.ones(400, 7))        # the input batch is not modified
    assert torch.equal(dropped[:, :3], torch.ones(400, 3))  # the synopsis is never hidden
    for cut in cuts:
        hidden = (dropped[:, cut] == -5.0).all(dim=1)
        kept = (dropped[:, cut] == 1.0).all(dim=1)
        assert bool((hidden | kept).all()) and 80 < int(hidden.sum()) < 160  # whole blocks, ~30 % of rows
    assert torch.equal(modality_dropout(batch, missing, cuts, 0.0, generator), batch)


def test_ablation_reports_variants_paired_differences_and_the_no_character_comparison(tmp_path):
    params = toy_params(tmp_path)
    params = params.model_copy(update={
        "evaluate": params.evaluate.model_copy(update={"cv_folds": 3}),
        "multimodal": params.multimodal.model_copy(update={"models": ("ridge", "mlp_small")}),
        "train": params.train.model_copy(update={"ridge_alpha": 0.1, "modality_dropout": 0.3})})
    anime = write_toy_dataset(params, count=150)
    ids = anime["anime_id"].to_numpy()
    keep_characters_of(params, set(ids[::3]))
    details = run_multimodal_ablation(params)
    reports = Path(params.paths.reports_dir)
    metrics = json.loads((reports / "multimodal.json").read_text())
    assert set(metrics) == {"with", "without"}
    with_chars = metrics["with"]
    for model in ("ridge", "mlp_small"):
        for variant in ("synopsis", "+descriptions", "+portraits", "all_inputs"):
            assert f"{model}: {variant}" in with_chars
        assert f"{model}: all_inputs" in metrics["without"] and f"{model}: synopsis" in metrics["without"]
    assert {"train_mean", "length_only"} <= set(with_chars)
    # the toy's synopsis, descriptions and portraits all follow quality: ridge on them ranks well
    assert with_chars["ridge: all_inputs"]["spearman"] > 0.8
    pairs = details["paired_with_characters"]
    portraits = next(p for p in pairs if p["a"] == "ridge: +portraits" and p["metric"] == "spearman")
    assert portraits["b"] == "ridge: synopsis" and portraits["folds"] == 3
    assert portraits["low"] <= portraits["mean"] <= portraits["high"]
    assert portraits["verdict"] in {"better", "worse", "cannot tell"}
    assert sum(s["with_characters"] for s in details["fold_sizes"]) == details["pool"]["with_characters"]
    text = (reports / "multimodal.md").read_text()
    assert "ridge: +portraits - ridge: synopsis" in text and "Anime without characters" in text


def test_ablation_without_any_characters_says_it_is_skipped(tmp_path):
    params = toy_params(tmp_path)
    write_toy_dataset(params, count=40, characters=False)
    details = run_multimodal_ablation(params)
    assert "skipped" in details and "skipped" in (Path(params.paths.reports_dir) / "multimodal.md").read_text()
    assert pd.read_json(Path(params.paths.reports_dir) / "multimodal.json", typ="series")["skipped"] == 1


def test_pitches_with_characters_get_the_interval_sized_on_anime_with_characters(tmp_path):
    from anipop.core.artifacts import MinMaxScaler, ModelBundle
    from anipop.evaluation.calibration import conformal_half_width, conformal_half_width_with_characters
    from anipop.modeling.models import RidgeRegressor
    from anipop.serving.pitch import Character, Pitch
    from anipop.serving.predict import PitchPredictor

    params = toy_params(tmp_path)
    anime = write_toy_dataset(params, count=200)
    ids = anime["anime_id"].to_numpy()
    keep_characters_of(params, set(ids[(np.arange(200) % 20) < 10]))  # half the anime; val: 10 with, 10 without
    train = anime[anime["split"] == "train"]
    model = RidgeRegressor(0.1).fit(build_features(params.paths.embeddings_dir, train["anime_id"], ALL),
                                    train["score_norm"].to_numpy())
    bundle = ModelBundle(name="ridge", model=model, inputs=ALL, input_set="all_inputs", input_type="embeddings",
                         train_mean=0.5, aggregation="mean", image_size=32)
    overall = conformal_half_width(params, bundle, 0.9)
    with_chars = conformal_half_width_with_characters(params, bundle, 0.9)
    val = anime[(anime["split"] == "val") & ((np.arange(200) % 20) < 10)]
    residuals = np.abs(val["score_norm"].to_numpy()
                       - model.predict(build_features(params.paths.embeddings_dir, val["anime_id"], ALL)))
    assert len(val) == 10 and with_chars == pytest.approx(residuals.max())  # 10 rows at 90 %: the largest
    assert conformal_half_width_with_characters(params, replace(bundle, inputs=["synopsis"]), 0.9) is None
    predictor = PitchPredictor(bundle=bundle, text=params.embed.text, image=params.embed.image,
                               scaler=MinMaxScaler(1.0, 10.0), half_width=overall, coverage=0.9,
                               limits=request_limits(), half_width_with_characters=with_chars)
    predictor.save(tmp_path / "predictor")
    loaded = PitchPredictor.from_dir(tmp_path / "predictor")
    hero = Character(name="A", description="brave")
    assert loaded.interval_half_width(Pitch("story", [hero])) == with_chars
    assert loaded.interval_half_width(Pitch("story", [])) == overall
    keep_characters_of(params, set(ids[(np.arange(200) % 20) == 0]))  # no val anime with characters left
    assert conformal_half_width_with_characters(params, bundle, 0.9) is None


def test_presence_neutral_characters_cannot_move_a_score_by_being_there():
    """Characters present only on high-scoring rows, their content pure noise: a model reading presence learns
    a bonus for any pitch with characters; the presence-neutral one cannot."""
    from anipop.modeling.modality import PresenceNeutral, PresenceNeutralModel
    from anipop.modeling.models import RidgeRegressor

    rng = np.random.default_rng(0)
    n, dims = 600, {"synopsis": 4, "character_description": 3}
    cuts = maskable_slices(["synopsis", "character_description"], dims)
    synopsis = rng.normal(0, 1, (n, 4))
    has = rng.random(n) < 0.2
    block = np.where(has[:, None], rng.normal(1.0, 1, (n, 3)), 0.0)  # noise around a non-zero mean
    features = np.column_stack([synopsis, block, has.astype(float)]).astype(np.float32)
    target = 0.4 + 0.05 * synopsis[:, 0] + 0.3 * has  # the "popular shows have characters" bias
    learned = RidgeRegressor(1.0).fit(features, target)
    neutral = PresenceNeutral(cuts).fit(features)
    transformed = neutral.transform(features)
    assert not transformed[:, cuts[0].stop - 1].any()                           # presence zeroed
    np.testing.assert_allclose(transformed[has, 4:7].mean(axis=0), 0, atol=1e-5)  # centred where present
    assert not transformed[~has, 4:7].any()                                      # absent stays zero
    centred = PresenceNeutralModel(RidgeRegressor(1.0).fit(transformed, target), neutral)
    pitch = np.zeros((2, 8), dtype=np.float32)
    pitch[0, 4:7], pitch[0, 7] = neutral.means[0], 1.0                           # an average character
    learned_bonus = np.diff(learned.predict(pitch))[0]
    neutral_bonus = np.diff(centred.predict(pitch))[0]
    assert abs(learned_bonus) > 0.2 and abs(neutral_bonus) < 1e-6


def test_a_served_pitch_model_scores_pitches_with_and_without_characters(tmp_path):
    """The primary pitch model reads characters when a pitch has them: the predictor embeds their
    descriptions and portraits with the model's encoders and aggregates them as the dataset's rows were; a
    pitch without characters gets no character correction, as inputs with none at all."""
    from conftest import params_in
    from fixtures_models import build_tiny_bert, sentence
    from PIL import Image

    from anipop.core.artifacts import MinMaxScaler, ModelBundle
    from anipop.encoders.image import DESCRIPTOR
    from anipop.modeling.features import PitchInputs
    from anipop.modeling.pitch import new_pitch_model
    from anipop.serving.pitch import Character, Pitch
    from anipop.serving.predict import PitchPredictor

    kinds = ["synopsis", "character_description", "portrait"]
    rng = np.random.default_rng(0)
    quality = rng.random(40)

    def pitch(i: int, characters: bool) -> Pitch:
        words = "great " * int(quality[i] * 5) + "dull " * int((1 - quality[i]) * 5) + sentence(i, 6)
        shade = int(30 + 200 * quality[i])
        cast = [Character(f"C{i}{k}", sentence(100 * i + k, 6), Image.new("RGB", (12, 16), (shade, shade, 40)))
                for k in range(2)] if characters else []
        return Pitch(words, cast)

    pitches = [pitch(i, characters=i % 2 == 0) for i in range(40)]  # 20 with characters: over 2 x stack_folds
    cfg = params_in(tmp_path).train.pitch.model_copy(update={
        "gbm_n_estimators": 30, "stack_folds": 3, "gbm_min_child_samples": 3, "min_count": 1})
    bundle = ModelBundle(name="pitch_stack", model=None, inputs=kinds, input_set="all_inputs", input_type="pitch",
                         train_mean=0.5, aggregation="mean", image_size=8)
    predictor = PitchPredictor(bundle=bundle, text=knobs("embed.text", model=str(build_tiny_bert(tmp_path / "bert")), cpu_runtime="torch"),
                               image=knobs("embed.image", model=DESCRIPTOR), scaler=MinMaxScaler(1.0, 10.0),
                               half_width=0.1, coverage=0.9, device="cpu")
    training = predictor._pitch_inputs(pitches)  # the served path builds the training rows too: one encoder
    assert training.characters["portrait"][1].sum() == 0 and training.characters["portrait"][0, -1] == 1
    bundle.model = new_pitch_model("pitch_stack", kinds, cfg, seed=0).fit(training, 0.2 + 0.6 * quality)
    served = [pitch(0, characters=True), pitch(0, characters=False)]
    assert bundle.model.trees.characters.model is not None
    correction = bundle.model.character_correction(predictor._pitch_inputs(served))
    assert np.isfinite(correction[0]) and correction[1] == 0
    scored = predictor.predict(served)
    assert scored["score"].between(1, 10).all()
    alone = predictor.scaler.inverse(bundle.model.predict(PitchInputs(synopsis=[served[1].synopsis])))
    assert scored["score"].iloc[1] == pytest.approx(float(alone[0]), abs=1e-4)  # no characters: no correction
    assert predictor.ignored_inputs(served) is None  # the characters given were read
    predictor.half_width_with_characters = 0.3
    assert predictor.interval_half_width(served[0]) == 0.3 and predictor.interval_half_width(served[1]) == 0.1
    bundle.model.trees.characters.weight = 0.0  # characters that predicted nothing out of fold: the producer is told
    assert "the 2 character(s) given did not change the score" in predictor.ignored_inputs(served)
    assert not predictor._pitch_inputs(served).characters  # nor are they embedded for nothing
    assert predictor.interval_half_width(served[0]) == 0.1
