"""The jikan source against a respx-mocked Jikan v4: paging, retries, rate limits, portraits, resuming.

No test sleeps for real: the source gets a fake clock whose sleep only advances the clock and records the wait.
"""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fixtures_jikan import AnimeSpec, CharacterSpec, FakeClock, mock_jikan, truncated_image_bytes  # noqa: E402

from anipop.data.schema import QUARANTINE, RAW_ANIME, RAW_CHARACTERS  # noqa: E402
from anipop.sources.httpclient import is_decodable_image  # noqa: E402
from anipop.sources.jikan import JikanSource, anime_row  # noqa: E402
from anipop.sources.ratelimit import RateLimiter, jikan_limiter  # noqa: E402

API_HOST = "api.jikan.moe"


@pytest.fixture
def api_times() -> list[float]:
    """Clock time of every request sent to the API host (filled by the client's event hook)."""
    return []


@pytest.fixture
def client(router, clock: FakeClock, api_times: list[float]):
    def record(request: httpx.Request) -> None:
        if request.url.host == API_HOST:
            api_times.append(clock.now)

    with httpx.Client(event_hooks={"request": [record]}) as http_client:
        yield http_client


def source(client: httpx.Client, clock: FakeClock, **overrides) -> JikanSource:
    settings = {"max_retries": 4, "progress": False, "refresh": "full", "wall_clock": clock.wall, **overrides}
    return JikanSource(client=client, sleep=clock.sleep, clock=clock, **settings)


def specs(count: int, first_id: int = 1) -> list[AnimeSpec]:
    """`count` anime, each with one main character (id anime*10+1) and one supporting one."""
    return [
        AnimeSpec(i, f"Anime {i}", characters=[
            CharacterSpec(i * 10 + 1, f"Hero, Number{i}"),
            CharacterSpec(i * 10 + 2, f"Friend, Number{i}", role="Supporting"),
        ])
        for i in range(first_id, first_id + count)
    ]


def max_in_window(times: list[float], period: float) -> int:
    """The most events inside any half-open window [t, t + period)."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u < t + period) for i, t in enumerate(times)), default=0)


def test_pages_through_two_pages_and_stops_at_limit(router, client, clock, api_times, tmp_path):
    mock = mock_jikan(router, specs(30))
    result = source(client, clock, limit=27).ingest(tmp_path)
    assert result.anime["anime_id"].tolist() == list(range(1, 28))
    pages = [dict(call.request.url.params) for call in mock.routes["anime"].calls]
    assert [(p["page"], p["limit"]) for p in pages] == [("1", "25"), ("2", "25")]  # page size fixed, or offsets shift
    assert pages[0]["order_by"] == "mal_id" and pages[0]["sort"] == "asc" and "type" not in pages[0]  # stable paging
    assert "sfw" not in pages[0]
    assert len(result.characters) == 27 and set(result.characters["role"]) == {"Main"}
    assert max_in_window(api_times, 1.0) <= 3  # the source really goes through the limiter


def test_stops_when_has_next_page_is_false(router, client, clock, tmp_path):
    mock = mock_jikan(router, specs(30))
    result = source(client, clock).ingest(tmp_path)
    assert len(result.anime) == 30 and mock.calls("anime") == 2


def test_types_are_paged_one_type_per_query(router, client, clock, tmp_path):
    catalogue = specs(4)
    catalogue[1].type = catalogue[3].type = "Movie"
    mock = mock_jikan(router, catalogue)
    result = source(client, clock, types=["movie"], start_date="2010-01-01").ingest(tmp_path)
    assert result.anime["anime_id"].tolist() == [2, 4]
    params = mock.routes["anime"].calls[0].request.url.params
    assert params["type"] == "movie" and params["start_date"] == "2010-01-01"


def test_output_frames_conform_to_the_raw_schemas(router, client, clock, tmp_path):
    mock_jikan(router, specs(2))
    result = source(client, clock).ingest(tmp_path)
    for schema, frame in ((RAW_ANIME, result.anime), (RAW_CHARACTERS, result.characters), (QUARANTINE, result.quarantine)):
        assert frame.columns.tolist() == schema.column_names
        assert frame.dtypes.astype(str).tolist() == [c.dtype for c in schema.columns]
        pd.testing.assert_frame_equal(schema.conform(frame), frame)
    first = result.anime.iloc[0]
    assert (first["premiered"], first["aired"], first["genres"], first["themes"], first["studios"]) == (
        "2013-04-07", "Apr 7, 2013 to ?", "Action, Drama", "Military", "Sunrise")
    assert (first["score"], first["scored_by"], first["members"], first["type"]) == (7.5, 12345, 54321, "TV")
    hero = result.characters.iloc[0]
    assert (hero["anime_id"], hero["character_id"], hero["portrait_path"]) == (1, 11, "images/11.jpg")
    assert is_decodable_image(tmp_path / hero["portrait_path"])
    assert not (tmp_path / "images" / "12.jpg").exists()  # supporting characters are not downloaded


def test_429_waits_for_retry_after_then_succeeds(router, client, clock, tmp_path):
    mock = mock_jikan(router, specs(1))
    mock.fail("anime", httpx.Response(429, headers={"Retry-After": "7"}, json={"status": 429, "type": "RateLimitException"}))
    result = source(client, clock).ingest(tmp_path)
    assert 7.0 in clock.sleeps
    assert mock.calls("anime") == 2 and len(result.anime) == 1
    assert "requests: 3 fetched, 0 from cache, 1 retries" in result.notes


def test_500_then_success_backs_off(router, client, clock, tmp_path):
    mock = mock_jikan(router, specs(1))
    mock.fail("characters:1", httpx.Response(500, json={"status": 500, "type": "InternalException"}))
    result = source(client, clock).ingest(tmp_path)
    assert mock.calls("characters:1") == 2 and len(result.characters) == 1
    assert any(1.0 < wait <= 2.0 for wait in clock.sleeps)  # initial backoff 1 s + jitter up to 1 s


@pytest.mark.parametrize("error", [httpx.ReadTimeout("timed out"), httpx.ConnectError("connection refused")])
def test_timeout_or_connection_error_then_success(router, client, clock, tmp_path, error):
    mock = mock_jikan(router, specs(1))
    mock.fail("character:11", error)
    result = source(client, clock).ingest(tmp_path)
    assert mock.calls("character:11") == 2
    assert result.characters["description"].notna().all()


def test_gives_up_after_max_retries_quarantines_the_url_and_goes_on(router, client, clock, tmp_path):
    mock = mock_jikan(router, specs(3))
    mock.fail("characters:2", *[httpx.Response(503) for _ in range(3)])
    result = source(client, clock, max_retries=3, max_failure_share=0.5).ingest(tmp_path)
    assert mock.calls("characters:2") == 3
    assert result.anime["anime_id"].tolist() == [1, 3]  # the run went on past the broken anime
    record = result.quarantine.iloc[0]
    assert (len(result.quarantine), record["table"], record["row_key"], record["rule"], record["field"]) == (
        1, "anime", "2", "fetch_http_503", "url")
    assert record["value"] == "https://api.jikan.moe/v4/anime/2/characters"
    assert "gave up after 3 attempts" in record["reason"]


def test_truncated_portrait_is_quarantined_and_not_kept(router, client, clock, tmp_path):
    catalogue = specs(2)
    catalogue[0].characters[0].image = truncated_image_bytes()
    mock_jikan(router, catalogue)
    result = source(client, clock).ingest(tmp_path)
    broken = result.characters.set_index("character_id").loc[11]
    assert pd.isna(broken["portrait_path"]) and broken["name"] == "Number1 Hero"
    record = result.quarantine.iloc[0]
    assert (len(result.quarantine), record["stage"], record["table"], record["row_key"], record["rule"]) == (
        1, "ingest", "characters", "1:11", "portrait_download")
    assert "decode" in record["reason"] and "11.jpg" in record["reason"]
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["21.jpg"]  # no 11.jpg, no temp file


def test_a_character_shared_by_two_anime_is_downloaded_once(router, client, clock, tmp_path):
    catalogue = specs(2)
    shared = CharacterSpec(99, "Mascot, Shared", image=truncated_image_bytes())
    for anime in catalogue:
        anime.characters.append(shared)
    mock = mock_jikan(router, catalogue)
    result = source(client, clock).ingest(tmp_path)
    assert mock.calls("character:99") == 1 and mock.calls("image:99") == 1  # second time from cache / memory
    assert sorted(result.characters.query("character_id == 99")["anime_id"]) == [1, 2]
    assert sorted(result.quarantine["row_key"]) == ["1:99", "2:99"]  # every null portrait says why


def test_character_without_description_is_kept_with_null(router, client, clock, tmp_path):
    catalogue = specs(1)
    catalogue[0].characters[0].about = None
    mock_jikan(router, catalogue)
    result = source(client, clock).ingest(tmp_path)
    assert len(result.characters) == 1 and pd.isna(result.characters.loc[0, "description"])
    assert result.characters.loc[0, "portrait_path"] == "images/11.jpg"
    assert result.quarantine.empty


def test_character_without_picture_gets_null_portrait_without_download(router, client, clock, tmp_path):
    catalogue = specs(1)
    catalogue[0].characters[0].image = None  # MAL's questionmark placeholder
    mock_jikan(router, catalogue)
    result = source(client, clock).ingest(tmp_path)
    assert pd.isna(result.characters.loc[0, "portrait_path"]) and result.quarantine.empty
    assert any("without a picture" in note for note in result.notes)


def test_resume_after_interruption_refetches_nothing_cached(router, client, clock, tmp_path):
    mock = mock_jikan(router, specs(3))
    mock.fail("character:21", KeyboardInterrupt())  # the process is killed while asking for character 21
    with pytest.raises(KeyboardInterrupt):
        source(client, clock).ingest(tmp_path)
    done_first = ["anime", "characters:1", "character:11", "image:11", "characters:2"]
    assert {key: mock.calls(key) for key in done_first} == dict.fromkeys(done_first, 1)
    assert mock.failures["character:21"] == [] and mock.calls("characters:3") == 0  # killed there (respx counts no call)

    result = source(client, clock).ingest(tmp_path)
    assert {key: mock.calls(key) for key in done_first} == dict.fromkeys(done_first, 1)  # nothing cached refetched
    assert (mock.calls("character:21"), mock.calls("characters:3"), mock.calls("image:31")) == (1, 1, 1)
    assert len(result.anime) == 3 and len(result.characters) == 3
    assert "requests: 3 fetched, 4 from cache, 0 retries" in result.notes
    assert "portraits: 2 downloaded, 0 from cache, 1 already on disk" in result.notes

    calls_before = len(router.calls)
    again = source(client, clock).ingest(tmp_path)
    assert len(router.calls) == calls_before  # a finished ingest reruns from disk alone
    pd.testing.assert_frame_equal(again.characters, result.characters)
    assert not list((tmp_path / ".http_cache").glob("*.tmp"))


def test_cache_outside_raw_dir_survives_dvc_emptying_it(router, client, clock, tmp_path):
    """`dvc repro` deletes the raw folder before ingest reruns; nothing is fetched again."""
    import shutil

    mock_jikan(router, specs(2))
    raw_dir, cache_dir = tmp_path / "raw", tmp_path / "cache"
    first = source(client, clock, cache_dir=cache_dir).ingest(raw_dir)
    shutil.rmtree(raw_dir)
    calls_before = len(router.calls)
    again = source(client, clock, cache_dir=cache_dir).ingest(raw_dir)
    assert len(router.calls) == calls_before
    assert any("from cache" in note and "0 downloaded" in note for note in again.notes if note.startswith("portraits"))
    pd.testing.assert_frame_equal(again.characters, first.characters)
    assert all((raw_dir / path).exists() for path in again.characters["portrait_path"].dropna())


def test_rate_limiter_never_exceeds_either_window():
    clock = FakeClock()
    limiter = jikan_limiter(3, 60, clock=clock, sleep=clock.sleep)
    rng = random.Random(0)
    sent = []
    for _ in range(200):
        limiter.acquire()
        sent.append(clock.now)
        clock.now += rng.choice([0.0, 0.0, 0.05, 0.4, 2.0])  # the work between requests
    assert max_in_window(sent, 1.0) <= 3
    assert max_in_window(sent, 60.0) <= 60


def test_rate_limiter_is_not_slower_than_the_limits_require():
    clock = FakeClock()
    limiter = jikan_limiter(3, 60, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(121):
        limiter.acquire()
        sent.append(clock.now)
    assert sent[:4] == [0.0, 0.0, 0.0, 1.0]  # a burst of 3, then the 4th as the first leaves the 1 s window
    assert (sent[59], sent[60], sent[120]) == (pytest.approx(19.0), 60.0, 120.0)  # the 61st waits for the minute


def test_rate_limiter_allows_a_burst_then_waits_for_the_oldest_call():
    clock = FakeClock()
    limiter = RateLimiter([(3, 1.0)], clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now = 0.25
    assert limiter.acquire() == pytest.approx(0.75)


def test_premiered_is_as_precise_as_mal_knows():
    year_only = {"mal_id": 5, "title": "X", "aired": {"from": "2013-01-01T00:00:00+00:00", "string": "2013",
                                                       "prop": {"from": {"day": None, "month": None, "year": 2013}}}}
    no_prop = {"mal_id": 6, "title": "Y", "aired": {"from": "2001-10-03T00:00:00+00:00", "string": "Oct 3, 2001"}}
    only_string = {"mal_id": 7, "title": "Z", "aired": {"from": None, "string": "Apr 2013"}}
    assert [anime_row(item)[0]["premiered"] for item in (year_only, no_prop, only_string)] == ["2013", "2001-10-03", "2013-04"]


def test_unparseable_score_quarantines_the_anime():
    row, record = anime_row({"mal_id": 9, "title": "Broken", "score": 42})
    assert row is None and (record["rule"], record["field"], record["row_key"]) == ("parse", "score", "9")


def test_params_yaml_builds_a_jikan_source():
    from anipop.core.config import load_params
    from anipop.sources.ingest import make_source

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    ingest = params.ingest.model_copy(update={"source": "jikan", "limit": 10})
    made = make_source(ingest, params.paths)
    assert isinstance(made, JikanSource) and made.limit == 10
    assert (made.requests_per_second, made.requests_per_minute) == (1, 50)  # the default budget: ~50 a minute
    assert (made.order_by, made.sort, made.refresh) == ("mal_id", "asc", "incremental")
