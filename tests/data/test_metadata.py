"""Pitch metadata (issue 18): parsing of MAL's raw strings, quarantine, the train-only vocabulary, the pitch's
optional fields, Great Expectations, and the pitch models that read them."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import params_in
from fixtures_mal import mal_row, write_mal_csv

from anipop.data.metadata import (
    MISSING,
    UNKNOWN,
    MetadataEncoder,
    MetadataError,
    parse_table,
    parse_values,
    parse_year,
    table_values,
)
from anipop.data.prepare import run_prepare
from anipop.data.schema import PREPARED_ANIME, QUARANTINE, RAW_ANIME, RAW_CHARACTERS, read_table, write_table
from anipop.modeling.pitch_models import PitchInputs, PitchRegressor
from anipop.serving.pitch import PitchError, parse_pitches
from anipop.sources.local import LocalSource

LONG = " ".join(["word"] * 25)


@pytest.mark.parametrize(("field", "raw", "expected"), [
    ("genres", "['Action', 'Award Winning', 'Sci-Fi']", ["Action", "Award Winning", "Sci-Fi"]),
    ("genres", "NOT_EXIST", []),
    ("producers", "['None found', 'add some']", []),          # MAL's placeholder list
    ("studios", "None found, add some", []),                  # ... and its plain-text twin
    ("studios", "Studio Gokumi, AXsiZ", ["Studio Gokumi", "AXsiZ"]),
    ("producers", "['Aniplex', 'Dentsu', 'Aniplex', '']", ["Aniplex", "Dentsu"]),  # duplicates and empty items
    ("type", "Unknown", []),
    ("source", "N/A", []),
    ("source", "Light novel", ["Light novel"]),
    ("demographic", "Shounen", ["Shounen"]),
    ("themes", "['Gore &amp; Horror']", ["Gore & Horror"]),  # HTML entities unescaped
])
def test_raw_strings_parse_into_clean_values(field, raw, expected):
    assert parse_values(field, raw) == expected


@pytest.mark.parametrize(("field", "raw", "why"), [
    ("producers", "['Aniplex', 'Dentsu'", "malformed list"),
    ("genres", "{'Action': 1}", None),  # not a list literal: read as one odd genre name, not an error
    ("type", "['TV', 'Movie']", "one value expected"),
    ("genres", 3, "expected text"),
])
def test_unparseable_values_are_errors_naming_the_field(field, raw, why):
    if why is None:
        assert parse_values(field, raw) == ["{'Action': 1}"]
        return
    with pytest.raises(MetadataError, match=f"field '{field}'.*{why}"):
        parse_values(field, raw)


def test_year_of_a_pitch():
    assert parse_year("2027") == 2027.0 and parse_year(None) is None and parse_year("") is None
    for bad in ("soon", "2027.5", "3000", True):
        with pytest.raises(MetadataError, match="year"):
            parse_year(bad)


def test_local_ingest_keeps_demographic_and_producers_raw(tmp_path):
    csv = write_mal_csv(tmp_path / "mal.csv", [
        mal_row(1, demographic="Seinen", producers="['Aniplex', 'Dentsu']"),
        mal_row(2, producers="['Aniplex'"),  # malformed: kept raw here, prepare decides
    ])
    anime = LocalSource(path=csv).ingest(tmp_path / "raw").anime.set_index("anime_id")
    assert anime.loc[1, "demographic"] == "Seinen" and anime.loc[1, "producers"] == "['Aniplex', 'Dentsu']"
    assert anime.loc[2, "producers"] == "['Aniplex'"  # the anime is not lost at ingest


def test_prepare_parses_metadata_and_quarantines_only_the_bad_field(tmp_path):
    params = params_in(tmp_path)
    rows = [{"anime_id": i, "title": f"A{i}", "synopsis": LONG, "score": 5.0 + i % 40 / 10, "type": "TV",
             "source": "Unknown", "genres": "Action, Drama", "demographic": "NOT_EXIST",
             "producers": "['Aniplex', 'Dentsu']", "rating": "R - 17+ (violence & profanity)"}
            for i in range(1, 41)]
    rows[0]["producers"] = "['Aniplex'"
    raw = pd.DataFrame(rows).reindex(columns=RAW_ANIME.column_names)
    write_table(RAW_ANIME, raw, params.paths.raw_dir / "anime.parquet")
    write_table(RAW_CHARACTERS, RAW_CHARACTERS.empty(), params.paths.raw_dir / "characters.parquet")
    write_table(QUARANTINE, QUARANTINE.empty(), params.paths.raw_dir / "quarantine.parquet")
    run_prepare(params)
    anime = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet").set_index("anime_id")
    assert len(anime) == 40  # the anime with the malformed list is kept, without that field
    assert pd.isna(anime.loc[1, "producers"]) and anime.loc[2, "producers"] == "Aniplex, Dentsu"
    assert anime["source"].isna().all() and anime["demographic"].isna().all()  # "Unknown", NOT_EXIST
    assert anime.loc[2, "rating"] == "R - 17+ (violence & profanity)"
    quarantine = read_table(QUARANTINE, params.paths.prepared_dir / "quarantine.parquet")
    bad = quarantine[quarantine["rule"] == "unparseable_metadata"]
    assert bad[["row_key", "field"]].values.tolist() == [["1", "producers"]]
    assert "malformed list" in bad["reason"].iloc[0]


def test_prepared_table_written_before_metadata_reads_as_missing(tmp_path):
    old = pd.DataFrame({"anime_id": [1], "title": ["A"], "synopsis": [LONG], "score": [7.0], "score_norm": [0.5],
                        "split": ["train"], "group_id": [1], "premiered": ["2010"]})
    old.to_parquet(tmp_path / "old.parquet")
    table = read_table(PREPARED_ANIME, tmp_path / "old.parquet")
    assert table["genres"].isna().all() and table_values(table, "genres") == [[]]


def test_vocabulary_is_learned_on_train_only_and_unknown_values_are_unknown():
    train = {"studios": [["Sunrise"], ["Sunrise"], ["Bones"], []]}
    encoder = MetadataEncoder(["studios"], min_count=2).fit(train)
    assert encoder.columns == ["studios=Sunrise", f"studios={UNKNOWN}", f"studios={MISSING}"]  # Bones: rare
    matrix = encoder.transform({"studios": [["Sunrise"], ["Brand New Studio"], [], ["Bones", "Sunrise"]]}).toarray()
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]


def test_pitch_accepts_metadata_and_unknown_values():
    frame = pd.DataFrame({"synopsis": ["A detective and a ghost solve crimes in a rainy harbour town."],
                          "genres": ["Mystery, Supernatural"], "studios": ['["A Studio Nobody Knows"]'],
                          "type": ["TV"], "year": ["2027"]})
    pitch = parse_pitches(frame)[0]
    assert pitch.metadata == {"genres": ["Mystery", "Supernatural"], "studios": ["A Studio Nobody Knows"],
                              "type": ["TV"]}
    assert pitch.year == 2027.0
    assert parse_pitches(frame[["synopsis"]])[0].metadata == {}  # every metadata field is optional


@pytest.mark.parametrize(("column", "value", "message"), [
    ("genre", "Action", "unknown field(s) ['genre'] (did you mean 'genres'?)"),
    ("studio", "Sunrise", "did you mean 'studios'?"),
    ("type", '["TV", "Movie"]', "row 0, field 'type': one value expected"),
    ("year", "next spring", "row 0, field 'year'"),
])
def test_misspelt_or_bad_metadata_fields_are_rejected(column, value, message):
    with pytest.raises(PitchError, match=re.escape(message)):
        parse_pitches(pd.DataFrame({"synopsis": ["A story."], column: [value]}))


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
    model = PitchRegressor(name, ["synopsis", "studios", "type", "year"], cfg, seed=0)
    model.fit(inputs.take(fit_rows), y[fit_rows])
    predicted = model.predict(inputs.take(held))
    assert np.corrcoef(predicted, y[held])[0, 1] > 0.8
    studio_only = inputs.take(held)
    gold = np.array([s == ["Gold Studio"] for s in studio_only.metadata["studios"]])
    assert predicted[gold].mean() > predicted[~gold].mean() + 0.15  # the studio moves the score
    bare = PitchInputs(synopsis=studio_only.synopsis)  # no metadata, no year: all missing, still scored
    scores = model.predict(bare)
    assert scores.shape == (100,) and np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()



def test_pitch_stack_blended_from_its_parts_predicts_exactly_as_its_own_fit(tmp_path):
    """train/backtest build pitch_stack from the meta_ridge and pitch_gbm fits (no second fit): same numbers."""
    cfg = params_in(tmp_path).train.pitch.model_copy(update={"min_count": 2, "gbm_n_estimators": 40,
                                                             "stack_folds": 3})
    inputs, y = _toy_pitch_data()
    inputs.embedding = np.random.default_rng(1).normal(size=(len(inputs), 8)).astype(np.float32)
    kinds = ["synopsis", "studios", "type", "year"]
    fit_rows, held = np.arange(200), np.arange(200, 300)
    own = PitchRegressor("pitch_stack", kinds, cfg, seed=0).fit(inputs.take(fit_rows), y[fit_rows])
    parts = [PitchRegressor(name, kinds, cfg, seed=0).fit(inputs.take(fit_rows), y[fit_rows])
             for name in ("meta_ridge", "pitch_gbm")]
    blended = PitchRegressor.blend_of(*parts)
    assert blended.name == "pitch_stack" and parts[1].name == "pitch_gbm"  # the parts are left as they were
    np.testing.assert_array_equal(blended.predict(inputs.take(held)), own.predict(inputs.take(held)))
    with pytest.raises(ValueError, match="same kinds"):
        PitchRegressor.blend_of(parts[0], PitchRegressor("pitch_gbm", kinds[:2], cfg, seed=0))

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
    """One model for every pitch (issue 13): a row's characters move its score; a row without characters
    scores exactly as with the switch off, and as inputs that carry no characters at all."""
    inputs, y = _toy_pitch_data()
    inputs, y, has, c = _with_characters(inputs, y, share=0.3)
    fit_rows, held = np.arange(200), np.arange(200, 300)
    model = PitchRegressor("pitch_stack", CHARACTER_KINDS, _character_cfg(tmp_path), seed=0)
    model.fit(inputs.take(fit_rows), y[fit_rows])
    off = PitchRegressor("pitch_stack", CHARACTER_KINDS[:4], _character_cfg(tmp_path), seed=0)
    off.fit(inputs.take(fit_rows), y[fit_rows])
    test = inputs.take(held)
    without = ~has[held]
    assert model.character_model is not None and model.character_weight > 0
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
    """Presence-neutral (the lead's check for issue 13): rows with characters score 0.15 higher for having them
    (the MAL sample's popular shows); switching their characters on or off does not shift the mean prediction
    over many held rows beyond noise, whether the characters carry signal or are pure noise."""
    inputs, y = _toy_pitch_data(600)
    inputs, y, has, c = _with_characters(inputs, y, share=0.4, signal=signal)
    if not signal:  # random embeddings: nothing to learn but the presence
        rng = np.random.default_rng(5)
        for block in inputs.characters.values():
            block[has, :-1] = rng.normal(0, 1, (int(has.sum()), block.shape[1] - 1))
    fit_rows, held = np.arange(400), np.arange(400, 600)
    model = PitchRegressor("pitch_stack", CHARACTER_KINDS, _character_cfg(tmp_path), seed=0)
    model.fit(inputs.take(fit_rows), y[fit_rows])
    assert model.character_model is not None  # fitted on the ~160 training rows with characters
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
    with caplog.at_level("INFO", logger="anipop.modeling.pitch_models"):
        model = PitchRegressor("pitch_stack", CHARACTER_KINDS, _character_cfg(tmp_path), seed=0).fit(inputs, y)
    assert model.character_model is None
    assert "4 training rows have characters (< 2 x stack_folds = 6)" in caplog.text
    assert not model.character_correction(inputs).any()
    scores = model.predict(inputs)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


def test_great_expectations_catch_unparsed_metadata(tmp_path):
    from anipop.data.validate import prepared_anime_suite

    anime = pd.DataFrame({"anime_id": [1, 2], "title": ["A", "B"], "synopsis": [LONG, LONG], "score": [7.0, 6.0],
                          "score_norm": [0.5, 0.4], "split": ["train", "train"], "group_id": [1, 2],
                          "premiered": ["2010", "2011"], "genres": ["Action, Drama", "['Action']"],
                          "type": ["TV", "Unknown"]})
    anime = PREPARED_ANIME.conform(anime)
    clean, _ = parse_table(anime)
    suite, frame, _ = prepared_anime_suite(anime)
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
    failed = {(r.expectation_config.kwargs.get("column"), r.expectation_config.type)
              for r in batch.get_batch(batch_parameters={"dataframe": frame}).validate(suite).results if not r.success}
    assert ("genres", "expect_column_values_to_not_match_regex") in failed
    assert ("type", "expect_column_values_to_not_be_in_set") in failed
    suite, frame, _ = prepared_anime_suite(clean)
    assert batch.get_batch(batch_parameters={"dataframe": frame}).validate(suite).success
