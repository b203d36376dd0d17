"""A simulated long ingest: 520 anime from a fake Jikan on a fake clock, with the faults a day-long run meets.

The fake server (one respx route per host, so a request costs O(1) to route) keeps its own clock-based view of
Jikan's documented limits (3/s, 60/min) and injects: lasting 5xx for a few anime and characters, a lasting
timeout, a portrait that is gone, transient timeouts and 5xx, and 429 bursts without Retry-After. The run must
finish, quarantine exactly the broken items, and after a kill in the middle, a resumed run must not ask again
for anything the first one got. Real time: a few seconds; fake time: the ~half hour the budget implies.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fixtures_jikan import (  # noqa: E402
    AnimeSpec,
    CharacterSpec,
    FakeClock,
    anime_characters,
    anime_page,
    character_resource,
    image_bytes,
    select,
)

from anipop.sources.jikan import JikanSource  # noqa: E402

API_HOST, CDN_HOST = "api.jikan.moe", "cdn.myanimelist.net"
ANIME = 520
TIMEOUT_S = 30.0
LATENCY_S = 0.2  # fake time the server takes to answer
PORTRAIT = image_bytes()
LASTING = {"/v4/anime/21/characters": 500, "/v4/anime/377/characters": 503, "/v4/characters/1001": 500}
LASTING_TIMEOUT = {"/v4/characters/4441"}
TRANSIENT = {"/v4/anime/50/characters": ["timeout", "timeout"], "/v4/characters/2001": ["timeout"],
             "/v4/anime/60/characters": [502]}  # and listing page 3: two 500s (FakeJikan.listing_faults)
BURSTS_AT = (100, 300, 600, 900)  # the server refuses 3 requests in a row from its n-th request on (load)
BROKEN = {  # (table, row_key) -> rule: exactly what must be quarantined
    ("anime", "21"): "fetch_http_500",
    ("anime", "377"): "fetch_http_503",
    ("characters", "100:1001"): "fetch_http_500",
    ("characters", "444:4441"): "fetch_timeout",
    ("characters", "333:3331"): "portrait_download",
}


def catalogue() -> list[AnimeSpec]:
    """Anime 1..520: one main character (id*10+1) and a supporting one; every 5th anime a second main one;
    the characters of every 10th anime (3, 13, ...) have a portrait."""
    specs = []
    for i in range(1, ANIME + 1):
        picture = PORTRAIT if i % 10 == 3 else None  # most without one (MAL's placeholder): fewer files, a fast test
        characters = [CharacterSpec(i * 10 + 1, f"Hero, Number{i}", image=picture),
                      CharacterSpec(i * 10 + 2, f"Friend, Number{i}", role="Supporting", image=picture)]
        if i % 5 == 0:
            characters.append(CharacterSpec(i * 10 + 3, f"Rival, Number{i}", image=picture))
        specs.append(AnimeSpec(i, f"Anime {i}", characters=characters, score=round(5 + (i % 40) / 10, 2)))
    return specs


@dataclass
class FakeJikan:
    """The server side: answers by path, advances the fake clock, injects the fault plan, logs every request."""

    clock: FakeClock
    specs: list[AnimeSpec]
    kill_at: int | None = None  # raise KeyboardInterrupt at this request number (the process is killed)
    requests: list[tuple[float, str, str]] = field(default_factory=list)  # (time, url, outcome)
    transient: dict[str, list] = field(default_factory=lambda: {k: list(v) for k, v in TRANSIENT.items()})
    burst_left: int = 0
    minute: deque = field(default_factory=deque)  # times of the API requests of the last 60 s

    def __post_init__(self) -> None:
        self.by_id = {spec.mal_id: spec for spec in self.specs}
        self.characters = {c.mal_id: c for spec in self.specs for c in spec.characters}
        self.listing_faults = {"3": [500, 500]}  # page 3 fails twice, then answers

    def api(self, request: httpx.Request) -> httpx.Response:
        if self.kill_at is not None and len(self.requests) + 1 >= self.kill_at:
            self.kill_at = None
            raise KeyboardInterrupt
        url, path, now = str(request.url), request.url.path, self.clock.now
        while self.minute and self.minute[0] <= now - 60.0:
            self.minute.popleft()
        over_limit = len(self.minute) >= 60 or sum(1 for t in self.minute if t > now - 1.0) >= 3
        self.minute.append(now)
        if len(self.requests) + 1 in BURSTS_AT:
            self.burst_left = 3
        outcome = self._outcome(path, request.url.params, over_limit)
        self.clock.now += TIMEOUT_S if outcome == "timeout" else LATENCY_S
        label = "over_limit" if over_limit else "200" if isinstance(outcome, dict) else str(outcome)
        self.requests.append((now, url, label))
        if outcome == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if isinstance(outcome, int):  # Jikan's error bodies; its 429 carries no Retry-After
            return httpx.Response(outcome, json={"status": outcome, "type": "Exception", "message": "injected"})
        return httpx.Response(200, json=outcome)

    def _outcome(self, path: str, params: httpx.QueryParams, over_limit: bool):
        if over_limit or self.burst_left:
            self.burst_left = max(0, self.burst_left - 1)
            return 429
        if path in LASTING:
            return LASTING[path]
        if path in LASTING_TIMEOUT:
            return "timeout"
        queued = self.listing_faults.get(params.get("page", "")) if path == "/v4/anime" else self.transient.get(path)
        if queued:
            return queued.pop(0)
        if path == "/v4/anime":
            return anime_page(select(self.specs, params), int(params["page"]), int(params["limit"]))
        if match := re.fullmatch(r"/v4/anime/(\d+)/characters", path):
            return anime_characters(self.by_id[int(match[1])])
        if match := re.fullmatch(r"/v4/characters/(\d+)", path):
            return character_resource(self.characters[int(match[1])])
        return 404

    def cdn(self, request: httpx.Request) -> httpx.Response:
        gone = request.url.path.endswith("/3331.jpg")
        self.requests.append((self.clock.now, str(request.url), "cdn 404" if gone else "cdn"))
        if gone:
            return httpx.Response(404, text="Not Found")
        return httpx.Response(200, content=PORTRAIT, headers={"Content-Type": "image/jpeg"})

    def outcomes(self) -> Counter[str]:
        return Counter(outcome for _, _, outcome in self.requests)


def serve(router, server: FakeJikan) -> None:
    router.route(host=API_HOST).mock(side_effect=server.api)
    router.route(host=CDN_HOST).mock(side_effect=server.cdn)


def ingest(clock: FakeClock, client: httpx.Client, tmp_path: Path):
    return JikanSource(client=client, progress=False, refresh="full", sleep=clock.sleep, clock=clock,
                       wall_clock=clock.wall, timeout_s=TIMEOUT_S, cache_dir=tmp_path / "cache").ingest(tmp_path / "raw")


def quarantined(result) -> dict[tuple[str, str], str]:
    return {(r.table, r.row_key): r.rule for r in result.quarantine.itertuples()}


def test_a_long_ingest_with_lasting_and_passing_faults_finishes_and_quarantines_exactly_the_broken(router, clock, tmp_path, capsys):
    server = FakeJikan(clock, catalogue())
    serve(router, server)
    with httpx.Client() as client:
        result = ingest(clock, client, tmp_path)
    assert quarantined(result) == BROKEN
    assert len(result.anime) == ANIME - 2
    assert len(result.characters) == ANIME + ANIME // 5 - 2 - 2  # main ones, less the 2 broken anime's and 2 broken
    outcomes = server.outcomes()
    assert outcomes["over_limit"] == 0  # the client never broke Jikan's documented limits
    assert outcomes["429"] == 3 * len(BURSTS_AT)
    api_sent = sum(1 for _, url, _ in server.requests if url.startswith("https://api"))
    lines = {line.split(":")[0]: line for line in result.notes}
    with capsys.disabled():
        print(f"\nsimulated ingest: {ANIME} anime, {api_sent} API requests + {outcomes['cdn']} portrait requests, "
              f"outcomes {dict(outcomes)}; {lines['requests']}; {lines['http']}; {lines['waits']}; "
              f"quarantined {len(result.quarantine)}; fake wall time {clock.now / 60:.1f} min")
    assert clock.now < 60 * 60  # 1,200 requests at 50 a minute plus the waits: well under an hour of fake time


def test_kill_in_the_middle_then_resume_refetches_nothing_already_cached(router, clock, tmp_path):
    server = FakeJikan(clock, catalogue(), kill_at=600)
    serve(router, server)
    with httpx.Client() as client:
        with pytest.raises(KeyboardInterrupt):
            ingest(clock, client, tmp_path)
        first = list(server.requests)
        got = {url for _, url, outcome in first if outcome in ("200", "cdn")}
        assert 250 < len(got) < 700
        result = ingest(clock, client, tmp_path)
    second = server.requests[len(first):]
    asked_again = {url for _, url, _ in second} & got
    assert asked_again == set()  # nothing the first run received is requested again
    assert quarantined(result) == BROKEN and len(result.anime) == ANIME - 2
    assert any(note.startswith("portraits:") and "already on disk" in note for note in result.notes)
