"""Replay of real Jikan v4 responses (../shared/fixtures/jikan, see its README): jikanpy's VCR cassettes are
decoded here (gzip + base64 bodies), served through respx, and read by the same source code as a live ingest.

The recordings are MyAnimeList text that must not be republished, so they stay outside the repository; the
tests are skipped, saying why, where that folder is absent (ANIPOP_JIKAN_FIXTURES points elsewhere).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import httpx
import pytest
import yaml
from fixtures_jikan import QUERY_ENUMS, image_bytes  # noqa: E402

from anipop.sources.jikan import ANIME_TYPES, ORDER_BY, JikanSource, anime_row, given_family  # noqa: E402

FIXTURES = Path(os.environ.get("ANIPOP_JIKAN_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "jikan"))
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"real Jikan recordings not found at {FIXTURES}")
API = "https://api.jikan.moe/v4"


def cassette(name: str) -> list[dict]:
    """The interactions of a VCR cassette: uri, status, headers (one value each) and the decoded body."""
    recorded = yaml.safe_load((FIXTURES / "jikanpy-cassettes" / f"{name}.yaml").read_text(encoding="utf-8"))
    interactions = []
    for interaction in recorded["interactions"]:
        response = interaction["response"]
        headers = {key: values[0] for key, values in response["headers"].items()}
        body = response["body"]["string"]  # !!binary: PyYAML already undid the base64
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        interactions.append({"uri": interaction["request"]["uri"], "status": response["status"]["code"],
                             "headers": headers, "body": json.loads(body)})
    return interactions


def replay(interaction: dict) -> httpx.Response:
    """The recorded response as the server sent it, minus the transfer headers of the original bytes."""
    headers = {k: v for k, v in interaction["headers"].items() if k not in ("Content-Encoding", "Transfer-Encoding")}
    return httpx.Response(interaction["status"], headers=headers, json=interaction["body"])


def reactive(name: str) -> dict:
    return json.loads((FIXTURES / "reactive-jikan" / f"{name}.json").read_text(encoding="utf-8"))


def test_cassettes_decode_to_the_bodies_beside_them():
    for name in ("search-success", "top-success", "season-success", "anime-success", "character-success",
                 "character-failure", "anime-failure", "reviews-success"):
        decoded = cassette(name)[0]["body"]
        assert decoded == json.loads((FIXTURES / "jikanpy-cassettes" / f"{name}.0.json").read_text(encoding="utf-8"))


def test_every_recorded_anime_parses_and_unscored_ones_read_as_unscored():
    entries = [e for name in ("search-success", "top-success", "season-success") for e in cassette(name)[0]["body"]["data"]]
    entries += [cassette("anime-success")[0]["body"]["data"], *reactive("getAnimeSearch")["data"]]
    rows = [anime_row(entry) for entry in entries]
    assert len(rows) == 62 and [reject for _, reject in rows if reject is not None] == []
    by_id = {row["anime_id"]: row for row, _ in rows}
    assert by_id[53240]["score"] is None  # a recorded entry with score null
    assert by_id[5114]["score"] == 9.11 and by_id[5114]["type"] == "TV"


def test_query_values_match_the_openapi_description():
    spec = json.loads((FIXTURES / "jikan-rest-openapi.json").read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    assert tuple(schemas["anime_search_query_type"]["enum"]) == ANIME_TYPES == QUERY_ENUMS["type"]
    assert tuple(schemas["anime_search_query_orderby"]["enum"]) == ORDER_BY == QUERY_ENUMS["order_by"]
    assert set(schemas["search_query_sort"]["enum"]) == set(QUERY_ENUMS["sort"])
    assert set(schemas["anime_search_query_status"]["enum"]) == set(QUERY_ENUMS["status"])
    params = {p.get("name"): p for p in spec["paths"]["/anime"]["get"]["parameters"]}
    assert params["sfw"]["schema"]["type"] == "boolean"
    assert "YYYY-MM-DD" in params["start_date"]["description"] and "YYYY-MM-DD" in params["end_date"]["description"]


def test_real_bodies_through_the_source_404_cached_500_quarantined_names_one_format(router, clock, tmp_path):
    """A listing page, character lists, a character, a 404 and a 500, all as recorded, through one ingest."""
    season = cassette("season-success")[0]
    roles = reactive("getAnimeCharacters")               # /anime/11757/characters: "Kirigaya, Kazuto", Main
    kirito = reactive("getCharacterById")                # /characters/36765: "Kazuto Kirigaya"
    missing = cassette("character-failure")[0]           # a real 404 body
    broken = cassette("reviews-success")[0]              # a real 500 body
    ids = [entry["mal_id"] for entry in season["body"]["data"]]
    router.get(f"{API}/anime").mock(return_value=replay(season))
    for anime_id in ids:
        outcome = replay(broken) if anime_id == ids[3] else httpx.Response(200, json=roles)
        router.get(f"{API}/anime/{anime_id}/characters").mock(return_value=outcome)
    character = router.get(f"{API}/characters/36765").mock(side_effect=[replay(missing), httpx.Response(200, json=kirito)])
    router.get(url__startswith="https://cdn.myanimelist.net/images/characters/").respond(200, content=image_bytes())
    with httpx.Client() as client:
        result = JikanSource(client=client, limit=25, progress=False, refresh="full", max_retries=2,
                             sleep=clock.sleep, clock=clock, wall_clock=clock.wall).ingest(tmp_path)
    assert len(result.anime) == 24 and ids[3] not in set(result.anime["anime_id"])
    record = result.quarantine.iloc[0]
    assert (record["row_key"], record["rule"], record["value"]) == (str(ids[3]), "fetch_http_500", f"{API}/anime/{ids[3]}/characters")
    assert character.call_count == 1  # the 404 was cached: 24 anime list the character, one request
    assert set(result.characters["name"]) == {"Kazuto Kirigaya"} == {given_family(roles["data"][0]["character"]["name"])}
    assert result.characters["description"].isna().all()  # the details are gone (404): no biography
    assert kirito["data"]["name"] == "Kazuto Kirigaya"  # the /characters/{id} format the list's name is turned into


def test_a_recorded_character_gives_its_biography(router, clock, tmp_path):
    recorded = cassette("character-success")[0]
    router.get(f"{API}/anime").respond(200, json={"pagination": {"has_next_page": False, "last_visible_page": 1},
                                                   "data": [cassette("anime-success")[0]["body"]["data"]]})
    listed = {**recorded["body"]["data"], "name": "Ginko"}
    router.get(f"{API}/anime/457/characters").respond(200, json={"data": [{"character": listed, "role": "Main"}]})
    router.get(recorded["uri"]).mock(return_value=replay(recorded))
    router.get(url__startswith="https://cdn.myanimelist.net/").respond(200, content=image_bytes())
    with httpx.Client() as client:
        result = JikanSource(client=client, progress=False, refresh="full", sleep=clock.sleep, clock=clock,
                             wall_clock=clock.wall).ingest(tmp_path)
    hero = result.characters.iloc[0]
    assert (hero["anime_id"], hero["character_id"], hero["name"]) == (457, 425, "Ginko")
    assert hero["description"].startswith("Ginko employs himself as a Mushi master")
