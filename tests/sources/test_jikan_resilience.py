"""The jikan source against Jikan's real behaviour: per-item isolation, 429s without Retry-After, one limiter per
host, 404s cached, names, scores, query values as the OpenAPI description gives them, and refresh for retraining.

Everything runs on a fake clock against respx: no test sleeps for real.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from conftest import knobs
from fixtures_jikan import (  # noqa: E402
    BASE_URL,
    CDN,
    AnimeSpec,
    CharacterSpec,
    FakeClock,
    image_bytes,
    mock_jikan,
)

from anipop.core.config import ConfigError, load_params  # noqa: E402
from anipop.sources import IngestIncomplete  # noqa: E402
from anipop.sources.httpclient import CachedClient  # noqa: E402
from anipop.sources.jikan import JikanSource, anime_row, given_family, jikan_score  # noqa: E402
from anipop.sources.ratelimit import RateLimiter, jikan_limiter  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0


@pytest.fixture
def sent(clock: FakeClock) -> list[tuple[float, str]]:
    """(clock time, URL) of every request that left the client."""
    return []


@pytest.fixture
def client(router, clock: FakeClock, sent: list):
    def record(request: httpx.Request) -> None:
        sent.append((clock.now, str(request.url)))

    with httpx.Client(event_hooks={"request": [record]}) as http_client:
        yield http_client


def source(client: httpx.Client, clock: FakeClock, **overrides) -> JikanSource:
    settings = {"progress": False, "refresh": "full", "wall_clock": clock.wall, **overrides}
    return JikanSource(client=client, sleep=clock.sleep, clock=clock, **settings)


def specs(count: int, first_id: int = 1) -> list[AnimeSpec]:
    return [AnimeSpec(i, f"Anime {i}", characters=[CharacterSpec(i * 10 + 1, f"Hero, Number{i}")])
            for i in range(first_id, first_id + count)]


def max_in_window(times: list[float], period: float) -> int:
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u < t + period) for i, t in enumerate(times)), default=0)


# --- per-item isolation -------------------------------------------------------------------------------------


def test_lasting_500_on_one_anime_and_one_character_is_quarantined_and_the_run_goes_on(router, client, clock, tmp_path):
    catalogue = specs(5)
    mock = mock_jikan(router, catalogue)
    mock.fail("characters:2", *[httpx.Response(500, json={"status": 500, "type": "ParserException"})] * 50)
    mock.fail("character:41", *[httpx.ReadTimeout("timed out")] * 50)
    result = source(client, clock, max_retries=3, max_failure_share=0.5).ingest(tmp_path)
    assert result.anime["anime_id"].tolist() == [1, 3, 4, 5]
    assert sorted(result.characters["character_id"]) == [11, 31, 51]
    records = result.quarantine.set_index("row_key")
    assert records.loc["2", ["table", "rule", "field", "value"]].tolist() == [
        "anime", "fetch_http_500", "url", f"{BASE_URL}/anime/2/characters"]
    assert records.loc["4:41", ["table", "rule", "value"]].tolist() == ["characters", "fetch_timeout", f"{BASE_URL}/characters/41"]
    assert (mock.calls("characters:2"), mock.calls("character:41")) == (3, 3)
    assert any(note.startswith("failures: 1 anime, 1 characters, 0 listing entries") for note in result.notes)
    assert "quarantined: 1 by rule fetch_http_500" in result.notes


def test_a_listing_page_that_keeps_failing_is_quarantined_and_later_pages_still_read(router, client, clock, tmp_path):
    mock = mock_jikan(router, specs(60))
    ok = mock.routes["anime"].side_effect

    def page_two_broken(request: httpx.Request) -> httpx.Response:
        if request.url.params["page"] == "2":
            return httpx.Response(500, json={"status": 500})
        return ok(request)

    mock.routes["anime"].side_effect = page_two_broken
    result = source(client, clock, max_retries=2, max_failure_share=0.5).ingest(tmp_path)
    assert result.anime["anime_id"].tolist() == list(range(1, 26)) + list(range(51, 61))
    record = result.quarantine.iloc[0]
    assert (record["table"], record["rule"], record["row_key"]) == ("listing", "fetch_http_500", "order_by=mal_id sort=asc page=2")
    assert not list((tmp_path / ".http_cache").glob("jikan-state-*"))  # no incremental run builds on a listing with a hole


def test_failure_share_over_the_threshold_raises_with_the_summary(router, client, clock, tmp_path):
    mock = mock_jikan(router, specs(4))
    for key in ("characters:1", "characters:2"):
        mock.fail(key, *[httpx.Response(502)] * 10)
    with pytest.raises(IngestIncomplete, match=r"failures: 2 anime, 0 characters.*share 33\.33% \(max_failure_share 5\.00%\)"):
        source(client, clock, max_retries=2).ingest(tmp_path)
    source(client, clock, max_retries=2, max_failure_share=0.34).ingest(tmp_path)  # at or under it: a result


def test_the_ingest_command_exits_non_zero_with_the_summary(router, tmp_path, monkeypatch):
    """The CLI (what `dvc repro` runs) prints the one-line summary and exits 1, no traceback."""
    from conftest import params_in
    from typer.testing import CliRunner

    from anipop.cli import app

    mock = mock_jikan(router, specs(2))
    mock.fail("characters:1", *[httpx.Response(500)] * 50)
    fast = {"max_retries": 1, "max_failure_share": 0.1, "requests_per_second": 1000, "requests_per_minute": 10000}
    params = params_in(tmp_path, ingest={"source": "jikan", "jikan": knobs("ingest.jikan", **fast)})  # a real clock here: no waiting
    params_file = tmp_path / "params.yaml"
    import yaml

    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")), encoding="utf-8")
    outcome = CliRunner().invoke(app, ["ingest", "--params", str(params_file)])
    assert outcome.exit_code == 1
    assert "error: jikan ingest incomplete" in outcome.output and "failures: 1 anime" in outcome.output
    assert "Traceback" not in outcome.output


# --- 429s and the rate limiter --------------------------------------------------------------------------------


def test_429_without_retry_after_waits_a_whole_window_on_its_own_larger_budget(router, client, clock, sent, tmp_path):
    mock = mock_jikan(router, specs(1))
    refused = httpx.Response(429, json={"status": 429, "type": "RateLimitException", "message": "You are being rate limited"})
    mock.fail("anime", *[refused] * 6)
    result = source(client, clock, max_retries=2, rate_limit_attempts=8).ingest(tmp_path)
    assert mock.calls("anime") == 7 and len(result.anime) == 1  # 6 refusals outlast the 2-attempt error budget
    listing_times = [t for t, url in sent if "/anime?" in url]
    gaps = [b - a for a, b in zip(listing_times, listing_times[1:])]
    assert len(gaps) == 6 and all(gap >= 60.0 for gap in gaps)  # at least the rest of the minute window, each time


def test_429_over_its_budget_quarantines_the_item(router, client, clock, tmp_path):
    mock = mock_jikan(router, specs(2))
    mock.fail("characters:1", *[httpx.Response(429)] * 3)
    result = source(client, clock, rate_limit_attempts=3, max_failure_share=1.0).ingest(tmp_path)
    assert result.quarantine["rule"].tolist() == ["fetch_http_429"] and result.anime["anime_id"].tolist() == [2]


def test_a_429_holds_the_limiter_for_every_caller():
    clock = FakeClock()
    limiter = jikan_limiter(3, 60, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.hold(60.0)
    clock.now = 10.0
    assert limiter.acquire() == pytest.approx(50.0)  # another caller waits out the rest of the hold


def test_default_budget_stays_under_50_a_minute_and_1_a_second(router, client, clock, sent, tmp_path):
    mock_jikan(router, specs(40))
    source(client, clock).ingest(tmp_path)  # the default budget
    api = [t for t, url in sent if url.startswith(BASE_URL)]
    assert len(api) == 2 + 40 * 2  # two listing pages, then a character list and a character per anime
    assert max_in_window(api, 60.0) == 50 and max_in_window(api, 1.0) == 1
    assert clock.now == pytest.approx(60 + 31)  # 50 in the first minute (one a second), the 32 others after it


def test_the_limiter_covers_every_request_to_the_api_host_images_too(router, clock, tmp_path):
    """Portraits come from MAL's CDN (not limited); one on the API host goes through the same limiter."""
    sent = []
    for url in (f"{BASE_URL}/a", f"{BASE_URL}/b", f"{BASE_URL}/c"):
        router.get(url).respond(200, json={"data": 1})
    router.get(f"{BASE_URL}/picture.jpg").respond(200, content=image_bytes())
    router.get(f"{CDN}/picture.jpg").respond(200, content=image_bytes())
    limiter = RateLimiter([(2, 1.0)], clock=clock, sleep=clock.sleep)
    with httpx.Client(event_hooks={"request": [lambda r: sent.append((clock.now, r.url.host))]}) as client:
        http = CachedClient(client, tmp_path, {"api.jikan.moe": limiter}, 3, 5.0, sleep=clock.sleep, clock=clock)
        http.get_json(f"{BASE_URL}/a")
        http.get_json(f"{BASE_URL}/b")
        http.download_image(f"{CDN}/picture.jpg", tmp_path / "cdn.jpg")  # not the API host: no wait
        assert clock.now == 0.0
        http.download_image(f"{BASE_URL}/picture.jpg", tmp_path / "api.jpg")  # the 3rd API request in 1 s
        assert clock.now == pytest.approx(1.0)
        http.get_json(f"{BASE_URL}/c")
    assert max_in_window([t for t, host in sent if host == "api.jikan.moe"], 1.0) == 2


# --- 404s, names, scores --------------------------------------------------------------------------------------


def test_404s_are_cached_as_negative_results(router, client, clock, tmp_path):
    catalogue = specs(3)
    gone = CharacterSpec(99, "Arlert, Armin")
    for anime in catalogue:
        anime.characters.append(gone)
    mock = mock_jikan(router, catalogue)
    mock.fail("character:99", httpx.Response(404, json={"status": 404, "type": "HttpException", "message": "Not Found"}))
    result = source(client, clock).ingest(tmp_path)
    assert mock.calls("character:99") == 1  # asked once, though three anime list it
    listed = result.characters.query("character_id == 99")
    assert listed["name"].tolist() == ["Armin Arlert"] * 3 and listed["description"].isna().all()
    assert result.quarantine.empty
    source(client, clock).ingest(tmp_path)
    assert mock.calls("character:99") == 1  # and not again in the next run


def test_one_name_format_given_family_from_either_endpoint(router, client, clock, tmp_path):
    catalogue = specs(2)
    mock = mock_jikan(router, catalogue)
    mock.fail("character:21", httpx.Response(404))  # details gone: the list's "Family, Given" is turned round
    result = source(client, clock).ingest(tmp_path)
    assert result.characters["name"].tolist() == ["Number1 Hero", "Number2 Hero"]
    assert given_family("Monkey D., Luffy") == "Luffy Monkey D." and given_family("Naruto") == "Naruto"


@pytest.mark.parametrize("score", [0, 0.0, None])
def test_score_zero_or_null_is_unscored(score):
    row, reject = anime_row({"mal_id": 1, "title": "Unrated", "score": score, "scored_by": 0})
    assert reject is None and row["score"] is None
    assert jikan_score(7.25) == 7.25


# --- query values as the OpenAPI description gives them ------------------------------------------------------


def test_type_must_be_lowercase_in_the_source_and_in_params(tmp_path):
    with pytest.raises(ValueError, match=r"lowercase: \['tv'\]"):
        JikanSource(types=["TV"])
    text = (REPO / "params.yaml").read_text(encoding="utf-8").replace("    types: []", "    types: [TV, movie]")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ingest\.jikan\.types.*must be lowercase \(\['tv'\]\)"):
        load_params(params_file)


def test_the_mock_answers_400_to_an_uppercase_type_like_the_live_api(router):
    mock_jikan(router, specs(1))
    with httpx.Client() as client:
        assert client.get(f"{BASE_URL}/anime", params={"type": "TV"}).status_code == 400
        assert client.get(f"{BASE_URL}/anime", params={"type": "tv"}).status_code == 200


def test_sfw_and_dates_are_sent_as_documented(router, client, clock, tmp_path):
    catalogue = specs(4)
    catalogue[1].adult = True
    catalogue[2].airing = True
    catalogue[3].aired = (2009, 1, 1)
    mock = mock_jikan(router, catalogue)
    result = source(client, clock, sfw=True, start_date=date(2010, 1, 1), end_date="2020-12-31").ingest(tmp_path)
    params = dict(mock.routes["anime"].calls[0].request.url.params)
    assert {k: params[k] for k in ("sfw", "start_date", "end_date")} == {
        "sfw": "true", "start_date": "2010-01-01", "end_date": "2020-12-31"}
    assert result.anime["anime_id"].tolist() == [1]  # adult, airing (end_date: no end yet), too early: out
    source(client, clock).ingest(tmp_path / "again")
    assert "sfw" not in dict(mock.routes["anime"].calls[-1].request.url.params)  # a flag: never sent as false


def test_other_orders_carry_the_paging_caveat(router, client, clock, tmp_path):
    mock_jikan(router, specs(2))
    result = source(client, clock, order_by="members", sort="desc").ingest(tmp_path)
    assert any(note.startswith("caveat: order_by=members has no tiebreak") for note in result.notes)


# --- refresh for retraining -----------------------------------------------------------------------------------


def test_ttl_refetches_listing_and_character_lists_but_keeps_bios_and_portraits(router, client, clock, tmp_path):
    catalogue = specs(3)
    mock = mock_jikan(router, catalogue)
    first = source(client, clock).ingest(tmp_path)
    assert first.anime["score"].tolist() == [7.5, 7.5, 7.5]
    catalogue[0].score = 8.25
    clock.now += 3 * DAY
    source(client, clock).ingest(tmp_path)  # within the TTL: nothing fetched
    assert (mock.calls("anime"), mock.calls("characters:1")) == (1, 1)
    clock.now += 4 * DAY  # a week after the first run: past the 6-day TTL
    again = source(client, clock).ingest(tmp_path)
    assert again.anime["score"].tolist() == [8.25, 7.5, 7.5]
    assert (mock.calls("anime"), mock.calls("characters:1"), mock.calls("character:11"), mock.calls("image:11")) == (2, 2, 1, 1)
    assert "http: 4 sent, 0 cached 404s reused, 4 expired responses refetched, 0 given up" in again.notes


def test_incremental_refreshes_airing_recent_and_new_anime_only(router, client, clock, tmp_path):
    today = datetime.fromtimestamp(clock.wall(), tz=UTC).date()  # the source's "today" is UTC
    catalogue = specs(33)
    catalogue[4].airing = True                            # anime 5: airing
    catalogue[5].aired = (today.year, today.month, 1)     # anime 6: started this month
    mock = mock_jikan(router, catalogue)
    mock.hidden = {31, 32, 33}                            # published after the first run
    first = source(client, clock, refresh="incremental").ingest(tmp_path)
    assert len(first.anime) == 30 and any("full ingest" in note for note in first.notes)

    clock.now += 7 * DAY
    for anime in catalogue[:6]:
        anime.score = 9.0
    mock.hidden = set()
    calls_before = {key: mock.calls(key) for key in mock.routes}
    second = source(client, clock, refresh="incremental").ingest(tmp_path)
    scores = second.anime.set_index("anime_id")["score"]
    assert len(second.anime) == 33 and scores[[5, 6]].tolist() == [9.0, 9.0]  # airing and recent: new scores
    assert scores[[1, 2, 3, 4]].tolist() == [7.5] * 4                      # old, finished: last run's entry
    fetched = {key for key, route in mock.routes.items() if route.call_count > calls_before[key]}
    assert fetched == {"anime", "characters:5", "characters:6", "characters:31", "characters:32", "characters:33",
                       "character:311", "character:321", "character:331", "image:311", "image:321", "image:331"}
    listing = [dict(call.request.url.params) for call in mock.routes["anime"].calls[calls_before["anime"]:]]
    assert [(q.get("status"), q.get("start_date"), q["sort"]) for q in listing] == [
        ("airing", None, "asc"), (None, f"{date.fromordinal(today.toordinal() + 7 - 90)}", "asc"), (None, None, "desc")]


def test_params_and_the_retrain_flow_use_the_incremental_refresh():
    """The weekly retrain flow re-runs the ingest step with params.yaml, whose jikan refresh is incremental."""
    from anipop.sources.ingest import make_source

    params = load_params(REPO / "params.yaml")
    jikan = params.ingest.model_copy(update={"source": "jikan"})
    made = make_source(jikan, params.paths)
    assert made.refresh == "incremental" and made.cache_ttl_days < 7  # a weekly run finds last week's pages expired
    assert 'run_stages(project, ["ingest"], force=("ingest",)' in (REPO / "flows" / "retrain.py").read_text(
        encoding="utf-8")  # each scheduled run re-reads the source
