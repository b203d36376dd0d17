"""Staff and cast as pitch fields: parsed from real rows of the shared MAL file and from a Jikan staff response
shaped by the API's OpenAPI description; a pitch without them is still scored; post-release values are dropped."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import REAL_DATA, REPO_ROOT, request_limits
from fixtures_jikan import AnimeSpec, CharacterSpec, anime_staff, mock_jikan

from anipop.data.metadata import parse_table
from anipop.serving.pitch import parse_pitches
from anipop.sources.jikan import JikanSource, cast_names, staff_names
from anipop.sources.local import LocalSource
from anipop.sources.parsing import parse_duration, people_names

ROLES = ("Director", "Series Composition", "Script", "Character Design", "Music", "Original Creator")
SPEC = REPO_ROOT.parent / "shared" / "fixtures" / "jikan" / "jikan-rest-openapi.json"


def test_real_rows_give_key_staff_and_cast_as_given_family_names(tmp_path):
    if not REAL_DATA.exists():
        pytest.skip(f"real MAL data not found at {REAL_DATA}")
    anime = LocalSource(path=REAL_DATA, limit=30, staff_roles=ROLES).ingest(tmp_path).anime.set_index("title")
    bebop = anime.loc["Cowboy Bebop"]
    assert bebop["staff"] == "Shinichiro Watanabe"  # Director, Script...; the producers and sound director left out
    assert bebop["cast"].startswith("Kouichi Yamadera, Megumi Hayashibara")
    assert bebop["duration"] == 24.0
    names = [n for column in ("staff", "cast") for v in anime[column].dropna() for n in v.split(", ")]
    assert names and all("," not in n and n == n.strip() for n in names)  # "Family, Given" never splits a list
    parsed, problems = parse_table(anime.reset_index())
    assert not problems and parsed["staff"].notna().sum() > 20


def test_mal_staff_and_cast_strings_and_runtimes():
    staff = ("[{'name': 'Maseba, Yutaka', 'role': 'Producer'}, {'name': 'Watanabe, Shinichiro', 'role': "
             "'Director, Episode Director, Script'}, {'name': 'Kanno, Yoko', 'role': 'Music'}]")
    assert people_names(staff, ROLES) == "Shinichiro Watanabe, Yoko Kanno"
    assert people_names("['Yamadera, Kouichi', 'Yamadera, Kouichi', 'Tada, Aoi']") == "Kouichi Yamadera, Aoi Tada"
    assert people_names("[]") is None and people_names("NOT_EXIST") is None
    assert people_names("[{'name': broken") == "[{'name': broken"  # prepare reports it as unparseable metadata
    assert parse_duration("24 min. per ep.") == 24.0 and parse_duration("1 hr. 55 min.") == 115.0
    assert parse_duration("45 sec.") == 0.75 and parse_duration("Unknown") is None


def test_a_staff_response_shaped_by_the_openapi_description_is_read():
    schema = json.loads(SPEC.read_text())["components"]["schemas"]["anime_staff"]
    body = anime_staff(AnimeSpec(1, "Bebop"))
    person = schema["properties"]["data"]["items"]["properties"]
    for entry in body["data"]:  # the builder holds to the documented shape
        assert set(entry) == set(person) and set(entry["person"]) <= set(person["person"]["properties"])
        assert all(isinstance(p, str) for p in entry["positions"])
    assert staff_names(body["data"], ROLES) == "Shinichiro Watanabe, Yoko Kanno"
    cast = cast_names([{"role": "Supporting", "voice_actors": [{"person": {"name": "Hayashibara, Megumi"},
                                                                 "language": "Japanese"}]},
                       {"role": "Main", "voice_actors": [{"person": {"name": "Yamadera, Kouichi"}, "language": "Japanese"},
                                                          {"person": {"name": "Blum, Steve"}, "language": "English"}]}], 10)
    assert cast == "Kouichi Yamadera, Megumi Hayashibara"  # main characters first, Japanese only


def test_the_jikan_source_fetches_staff_and_keeps_the_anime_when_staff_fails(router, tmp_path):  # noqa: F811
    specs = [AnimeSpec(1, "Bebop", [CharacterSpec(10, "Spiegel, Spike")]), AnimeSpec(2, "Trigun")]
    mock = mock_jikan(router, specs)
    mock.fail("staff:2", httpx.Response(404, json={"status": 404}))
    with httpx.Client() as client:
        result = JikanSource(limit=2, client=client, cache_dir=tmp_path / "cache", staff_roles=ROLES, sleep=lambda s: None,
                             progress=False).ingest(tmp_path / "raw")
    anime = result.anime.set_index("anime_id")
    assert anime.loc[1, "staff"] == "Shinichiro Watanabe, Yoko Kanno" and anime.loc[1, "cast"] == "Actor Voice"
    assert anime.loc[2, "staff"] is None or str(anime.loc[2, "staff"]) in ("<NA>", "None")  # missing, anime kept
    assert mock.calls("staff:1") == 1


def test_pitches_with_and_without_staff_parse_and_award_winning_is_dropped_with_a_note():
    import pandas as pd

    pitches = parse_pitches(pd.DataFrame({
        "synopsis": ["A detective and a dragon solve crimes on a summer island.", "A quiet story."],
        "staff": ["Shinichiro Watanabe, Yoko Kanno", None], "cast": ['["Megumi Hayashibara"]', None],
        "genres": ["Action, Award Winning", "Drama"], "duration": ["24", None]}), request_limits())
    assert pitches[0].metadata["staff"] == ["Shinichiro Watanabe", "Yoko Kanno"] and pitches[1].metadata["staff"] == []
    assert pitches[0].metadata["genres"] == ["Action"] and pitches[0].post_release == ["genres: Award Winning"]
    assert pitches[0].duration == 24.0 and pitches[1].duration is None
