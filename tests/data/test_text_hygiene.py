"""Source credits leave the text at training time (prepare) and at serving time (the pitch parser) alike."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import params_in, request_limits

from anipop.data.prepare import run_prepare
from anipop.data.schema import PREPARED_ANIME, QUARANTINE, RAW_ANIME, RAW_CHARACTERS, read_table, write_table
from anipop.data.text import credits_in, strip_credits
from anipop.serving.pitch import PitchError, parse_pitches
from anipop.steps import call_step

STORY = "A retired bounty hunter takes one last job on a moon colony where nobody is who they claim to be at all."


@pytest.mark.parametrize("credit,source", [
    ("(Source: ANN)", "ANN"), ("(Source:AniDB)", "AniDB"), ("(source: Crunchyroll)", "Crunchyroll"),
    ("[Source: MAL News, edited]", "MAL News, edited"), ("[Written by MAL Rewrite]", "MAL Rewrite"),
    ("(Sources: ANN, Wikipedia)", "ANN, Wikipedia"),
])
def test_every_credit_variant_is_found_and_stripped(credit, source):
    text = f"{STORY}\n\n{credit}"
    assert credits_in(text) == [source]
    assert strip_credits(text) == STORY


def test_parentheses_that_are_not_credits_stay():
    text = "The hero (a former soldier) meets the source of the curse: a girl (aged 12)."
    assert strip_credits(text) == text
    assert credits_in(text) == []


def test_prepare_strips_credits_and_counts_them(tmp_path):
    params = params_in(tmp_path)
    rows = [{"anime_id": i, "title": f"Show{i}", "score": 5.0 + i / 100,
             "synopsis": f"{STORY} Part {i}." + (" (Source: ANN)" if i % 2 else "")} for i in range(1, 61)]
    write_table(RAW_ANIME, pd.DataFrame(rows).reindex(columns=RAW_ANIME.column_names),
                params.paths.raw_dir / "anime.parquet")
    write_table(RAW_CHARACTERS, RAW_CHARACTERS.empty(), params.paths.raw_dir / "characters.parquet")
    write_table(QUARANTINE, QUARANTINE.empty(), params.paths.raw_dir / "quarantine.parquet")
    report = call_step(run_prepare, params)
    prepared = read_table(PREPARED_ANIME, params.paths.prepared_dir / "anime.parquet")
    assert not prepared["synopsis"].str.contains("Source", regex=False).any()
    assert report["source_credits"]["anime_with_credit"] == 30
    assert report["source_credits"]["by_source"] == {"ANN": 30}


def test_a_pitch_is_cleaned_like_the_training_text():
    frame = pd.DataFrame({"synopsis": [f"{STORY} (Source: ANN)"],
                          "characters": ['[{"name": "Kaede", "description": "a tired hunter [Written by MAL Rewrite]"}]']})
    pitch = parse_pitches(frame, request_limits())[0]
    assert pitch.synopsis == STORY
    assert pitch.characters[0].description == "a tired hunter"


def test_a_pitch_that_is_only_a_credit_is_empty():
    with pytest.raises(PitchError, match="row 0, field 'synopsis': empty"):
        parse_pitches(pd.DataFrame({"synopsis": ["(Source: ANN)"]}), request_limits())
