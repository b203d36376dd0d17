"""Jikan v4 look-alike responses for offline tests: builders of documented response shapes and a respx mock.

Why shapes copied from the Jikan v4 docs (anime, anime characters, character resources and the pagination
block), fields we do not read included: a test that passes on a trimmed-down body can fail on the real one.
`mock_jikan(router, specs)` registers every route a JikanSource run needs; the returned JikanMock holds the
routes (for call counts) and can queue failures (429, 500, timeouts) in front of any route.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx
import pytest
import respx
from PIL import Image

BASE_URL = "https://api.jikan.moe/v4"
CDN = "https://cdn.myanimelist.net/images"
# The listing's query enums as the API's OpenAPI description gives them (a replay test checks they match it).
QUERY_ENUMS = {
    "type": ("tv", "movie", "ova", "special", "ona", "music", "cm", "pv", "tv_special"),
    "order_by": ("mal_id", "title", "start_date", "end_date", "episodes", "score", "scored_by", "rank", "popularity",
                 "members", "favorites"),
    "sort": ("desc", "asc"),
    "status": ("airing", "complete", "upcoming"),
}
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")  # the spec: YYYY-MM-DD, e.g. 2022, 2005-05, 2005-01-01
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (12, 16), color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A small real image, so the source's Pillow check decodes it."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def truncated_image_bytes() -> bytes:
    """A JPEG cut in the middle, like a dropped download: the header parses, the pixels do not."""
    full = image_bytes(size=(64, 64))
    return full[: len(full) // 2]


@dataclass
class CharacterSpec:
    """One character of an anime; `about=None` means MAL has no description; `image=None` no picture."""

    mal_id: int
    name: str
    about: str | None = "A character with a long and detailed description."
    role: str = "Main"
    image: bytes | None = field(default_factory=image_bytes)

    @property
    def image_url(self) -> str:
        if self.image is None:
            return "https://cdn.myanimelist.net/images/questionmark_23.gif"
        return f"{CDN}/characters/{self.mal_id % 16}/{self.mal_id}.jpg"


@dataclass
class AnimeSpec:
    mal_id: int
    title: str
    characters: list[CharacterSpec] = field(default_factory=list)
    score: float | None = 7.5
    type: str = "TV"
    synopsis: str = "A young hero sets out on a journey across a divided world to find a lost friend. " * 3
    aired: tuple[int, int, int] = (2013, 4, 7)
    airing: bool = False  # airing shows have no end date; finished ones ended 90 days after they started
    adult: bool = False   # left out when the query has sfw
    staff: list[tuple[str, list[str]]] = field(default_factory=lambda: [  # GET /anime/{id}/staff: name, positions
        ("Maseba, Yutaka", ["Producer"]), ("Watanabe, Shinichiro", ["Director", "Script", "Storyboard"]),
        ("Kanno, Yoko", ["Music"]), ("Kobayashi, Katsuyoshi", ["Sound Director"])])

    @property
    def started(self) -> date:
        return date(*self.aired)

    @property
    def ended(self) -> date | None:
        return None if self.airing else self.started + timedelta(days=90)


def _images(url: str) -> dict:
    return {
        "jpg": {"image_url": url, "small_image_url": url, "large_image_url": url},
        "webp": {"image_url": url.replace(".jpg", ".webp"), "small_image_url": url, "large_image_url": url},
    }


def _entity(mal_id: int, kind: str, name: str) -> dict:
    """The {mal_id, type, name, url} reference Jikan uses for genres, themes, studios, producers."""
    return {"mal_id": mal_id, "type": kind, "name": name, "url": f"https://myanimelist.net/anime/{kind}/{mal_id}"}


def anime_resource(spec: AnimeSpec) -> dict:
    """An item of GET /anime's `data`, as documented for the Jikan v4 anime resource."""
    year, month, day = spec.aired
    url = f"{CDN}/anime/{spec.mal_id % 16}/{spec.mal_id}.jpg"
    return {
        "mal_id": spec.mal_id, "url": f"https://myanimelist.net/anime/{spec.mal_id}", "images": _images(url),
        "trailer": {"youtube_id": None, "url": None, "embed_url": None}, "approved": True,
        "titles": [{"type": "Default", "title": spec.title}], "title": spec.title, "title_english": spec.title,
        "title_japanese": None, "title_synonyms": [], "type": spec.type, "source": "Original", "episodes": 12,
        "status": "Currently Airing" if spec.airing else "Finished Airing", "airing": spec.airing,
        "aired": {
            "from": f"{year:04d}-{month:02d}-{day:02d}T00:00:00+00:00", "to": None,
            "prop": {"from": {"day": day, "month": month, "year": year}, "to": {"day": None, "month": None, "year": None}},
            "string": f"{MONTHS[month - 1]} {day}, {year} to ?",
        },
        "duration": "24 min per ep", "rating": "PG-13 - Teens 13 or older",
        "score": spec.score, "scored_by": None if not spec.score else 12345, "rank": 100, "popularity": 200,
        "members": 54321, "favorites": 321, "synopsis": spec.synopsis, "background": None, "season": "spring",
        "year": year, "broadcast": {"day": "Sundays", "time": "17:00", "timezone": "Asia/Tokyo", "string": "Sundays at 17:00 (JST)"},
        "producers": [_entity(17, "anime", "Aniplex")], "licensors": [], "studios": [_entity(14, "anime", "Sunrise")],
        "genres": [_entity(1, "anime", "Action"), _entity(8, "anime", "Drama")], "explicit_genres": [],
        "themes": [_entity(38, "anime", "Military")], "demographics": [],
    }


def anime_page(specs: Sequence[AnimeSpec], page: int, per_page: int) -> dict:
    """GET /anime?page=&limit= : one page of `specs` with Jikan's pagination block."""
    chunk = specs[(page - 1) * per_page: page * per_page]
    return {
        "pagination": {
            "last_visible_page": max(1, math.ceil(len(specs) / per_page)), "has_next_page": page * per_page < len(specs),
            "current_page": page, "items": {"count": len(chunk), "total": len(specs), "per_page": per_page},
        },
        "data": [anime_resource(spec) for spec in chunk],
    }


def query_problem(params: httpx.QueryParams) -> str | None:
    """Why the live API would answer 400 to this /anime query (values outside the spec's enums or formats)."""
    for name, allowed in QUERY_ENUMS.items():
        if name in params and params[name] not in allowed:
            return f"The selected {name} is invalid."
    for name in ("start_date", "end_date"):
        if name in params and not _DATE.match(params[name]):
            return f"The {name} does not match the format Y-m-d."
    if "sfw" in params and params["sfw"] not in ("true", "false", "1", "0", ""):
        return "The sfw field must be true or false."
    if int(params.get("limit", 25)) > 25:
        return "The limit may not be greater than 25."
    return None


def select(specs: Sequence[AnimeSpec], params: httpx.QueryParams) -> list[AnimeSpec]:
    """The anime a query selects, in its order: filters as Jikan documents them, `members` order = spec order."""
    def day(text: str) -> date:
        parts = [int(p) for p in text.split("-")] + [1, 1]
        return date(parts[0], parts[1], parts[2])

    chosen = [s for s in specs if "type" not in params or s.type.lower() == params["type"]]
    if params.get("status") == "airing":
        chosen = [s for s in chosen if s.airing]
    if params.get("sfw") in ("true", "1", ""):
        chosen = [s for s in chosen if not s.adult]
    if "start_date" in params:
        chosen = [s for s in chosen if s.started >= day(params["start_date"])]
    if "end_date" in params:  # on the date airing ended: airing shows have none, so they drop out
        chosen = [s for s in chosen if s.ended is not None and s.ended <= day(params["end_date"])]
    if params.get("order_by") == "mal_id":
        chosen = sorted(chosen, key=lambda s: s.mal_id)
    if params.get("sort") == "desc" and params.get("order_by") == "mal_id":
        chosen.reverse()
    return chosen


def _character_ref(spec: CharacterSpec) -> dict:
    return {"mal_id": spec.mal_id, "url": f"https://myanimelist.net/character/{spec.mal_id}",
            "images": {"jpg": {"image_url": spec.image_url}, "webp": {"image_url": spec.image_url, "small_image_url": spec.image_url}},
            "name": spec.name}


def anime_characters(spec: AnimeSpec) -> dict:
    """GET /anime/{id}/characters: roles with voice actors."""
    return {"data": [
        {"character": _character_ref(c), "role": c.role, "favorites": 10,
         "voice_actors": [{"person": {"mal_id": 900 + c.mal_id, "url": "https://myanimelist.net/people/1",
                                      "images": {"jpg": {"image_url": f"{CDN}/voiceactors/1/1.jpg"}}, "name": "Voice, Actor"},
                           "language": "Japanese"}]}
        for c in spec.characters
    ]}


def anime_staff(spec: AnimeSpec) -> dict:
    """GET /anime/{id}/staff as the OpenAPI description's `anime_staff` schema gives it: person (mal_id, url, images,
    name "Family, Given") and positions."""
    return {"data": [
        {"person": {"mal_id": 7000 + i, "url": f"https://myanimelist.net/people/{7000 + i}",
                    "images": {"jpg": {"image_url": f"{CDN}/voiceactors/1/{7000 + i}.jpg"}}, "name": name},
         "positions": positions}
        for i, (name, positions) in enumerate(spec.staff)]}


def character_resource(spec: CharacterSpec) -> dict:
    """GET /characters/{id}: the character resource; `about` is null when MAL has no description.

    As on the live API, the name here is "Given Family" while the anime's character list says "Family, Given"."""
    family, _, given = spec.name.partition(", ")
    name = f"{given} {family}" if given else spec.name
    return {"data": {**_character_ref(spec), "name": name, "name_kanji": None, "nicknames": [], "favorites": 10,
                     "about": spec.about}}


@dataclass
class JikanMock:
    """The registered routes by key ('anime', 'characters:<anime id>', 'character:<id>', 'image:<id>')."""

    routes: dict[str, respx.Route]
    failures: dict[str, list] = field(default_factory=dict)
    hidden: set[int] = field(default_factory=set)  # anime not (yet) in the listing: "published" later

    def fail(self, key: str, *outcomes: httpx.Response | BaseException) -> None:
        """Serve `outcomes` (responses or raised exceptions) from route `key` before its normal answers."""
        self.failures.setdefault(key, []).extend(outcomes)

    def calls(self, key: str) -> int:
        return self.routes[key].call_count

    def _serve(self, key: str, normal):
        def handler(request: httpx.Request) -> httpx.Response:
            queue = self.failures.get(key)
            if queue:
                outcome = queue.pop(0)
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome
            return normal(request)
        return handler


def mock_jikan(router: respx.MockRouter, specs: Sequence[AnimeSpec], base_url: str = BASE_URL) -> JikanMock:
    """Register GET /anime (paged, `type` filtered), each anime's characters and staff, each main character and
    portrait.

    With a `limit` below len(specs) some routes stay uncalled: use respx.mock(assert_all_called=False) then.
    """
    mock = JikanMock(routes={})

    def listing(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        problem = query_problem(params)
        if problem:  # what the live API does with `type=TV`
            return httpx.Response(400, json={"status": 400, "type": "ValidationException", "messages": {"query": [problem]}})
        chosen = [s for s in select(specs, params) if s.mal_id not in mock.hidden]
        return httpx.Response(200, json=anime_page(chosen, int(params.get("page", 1)), int(params.get("limit", 25))))

    mock.routes["anime"] = router.get(f"{base_url}/anime").mock(side_effect=mock._serve("anime", listing))
    for anime in specs:
        key = f"characters:{anime.mal_id}"
        body = anime_characters(anime)
        mock.routes[key] = router.get(f"{base_url}/anime/{anime.mal_id}/characters").mock(
            side_effect=mock._serve(key, lambda request, body=body: httpx.Response(200, json=body)))
        staff_key, staff_body = f"staff:{anime.mal_id}", anime_staff(anime)
        mock.routes[staff_key] = router.get(f"{base_url}/anime/{anime.mal_id}/staff").mock(
            side_effect=mock._serve(staff_key, lambda request, body=staff_body: httpx.Response(200, json=body)))
        for character in anime.characters:
            if character.role == "Main":  # nothing else may be fetched: respx rejects unmocked URLs
                _mock_character(router, mock, character, base_url)
    return mock


def _mock_character(router: respx.MockRouter, mock: JikanMock, spec: CharacterSpec, base_url: str) -> None:
    key = f"character:{spec.mal_id}"
    if key in mock.routes:  # the same character in two anime: one route
        return
    body = character_resource(spec)
    mock.routes[key] = router.get(f"{base_url}/characters/{spec.mal_id}").mock(
        side_effect=mock._serve(key, lambda request, body=body: httpx.Response(200, json=body)))
    if spec.image is not None:
        image = spec.image
        def portrait(request: httpx.Request, image: bytes = image) -> httpx.Response:
            return httpx.Response(200, content=image, headers={"Content-Type": "image/jpeg"})

        key = f"image:{spec.mal_id}"
        mock.routes[key] = router.get(spec.image_url).mock(side_effect=mock._serve(key, portrait))


class FakeClock:
    """A monotonic clock that moves only when something sleeps (or a fake server says time passed); records sleeps.

    `wall()` is the matching wall clock (epoch seconds) for cache ages and "today"."""

    def __init__(self, epoch: float = 1_764_000_000.0) -> None:
        self.now = 0.0
        self.epoch = epoch
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.epoch + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def router():
    with respx.mock(assert_all_called=False) as mocked:
        yield mocked
