"""The `jikan` source: MyAnimeList through the Jikan v4 REST API — anime, their main characters and portraits.

Per anime: one listing entry (`GET /anime`, 25 a page), `GET /anime/{id}/characters` (roles), and for each main
character `GET /characters/{id}` (the "about" text) plus its portrait from MAL's CDN. Every JSON response and image
is cached under `cache_dir` (params: paths.http_cache_dir, outside the DVC-managed raw folder that `dvc repro`
empties first), portraits are copied to `raw_dir/images/`, so a killed ingest restarts where it stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
from tqdm import tqdm

from anipop.schema import QUARANTINE, RAW_ANIME, RAW_CHARACTERS, character_key
from anipop.sources import IngestResult, quarantine_record
from anipop.sources.httpclient import CachedClient, FetchError, HTTPStatusError
from anipop.sources.parsing import (
    ParseError,
    clean_synopsis,
    clean_text,
    parse_count,
    parse_fields,
    parse_first_air_date,
    parse_id,
    parse_score,
)
from anipop.sources.ratelimit import jikan_limiter

DEFAULT_BASE_URL = "https://api.jikan.moe/v4"
PAGE_SIZE_MAX = 25  # Jikan rejects limit > 25
CACHE_DIRNAME = ".http_cache"
# MAL serves these instead of a picture when a character has none: not a portrait, so not downloaded.
PLACEHOLDER_IMAGE_MARKERS = ("questionmark", "apple-touch-icon")

# raw schema column -> (Jikan anime field, parser). A parser raising ParseError quarantines the anime.
_ANIME_FIELDS: dict[str, tuple[str, Callable[[object], object]]] = {
    "title": ("title", clean_text),
    "synopsis": ("synopsis", clean_synopsis),
    "score": ("score", parse_score),
    "scored_by": ("scored_by", parse_count),
    "members": ("members", parse_count),
    "favorites": ("favorites", parse_count),
    "type": ("type", clean_text),
    "source": ("source", clean_text),
    "episodes": ("episodes", parse_count),
    "rating": ("rating", clean_text),
}


@dataclass
class JikanSource:
    """Pages `GET {base_url}/anime` up to `limit` anime (None = all) and fetches their main characters.

    `max_retries` counts attempts per request, the first included. `types` pages each type in turn (Jikan
    filters one type per query); `limit` is the total over all types. `client`, `sleep` and `clock` are
    injectable so tests run against respx on a fake clock.
    """

    base_url: str = DEFAULT_BASE_URL
    limit: int | None = None
    start_date: str | date | None = None
    end_date: str | date | None = None
    types: Sequence[str] = ()
    order_by: str = "members"
    sort: str = "desc"
    max_retries: int = 5
    timeout_s: float = 30.0
    requests_per_second: int = 3
    requests_per_minute: int = 60
    client: httpx.Client | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    progress: bool | None = None  # None: a bar only on a terminal
    cache_dir: Path | None = None  # JSON responses and images; default raw_dir/.http_cache
    name: str = "jikan"

    def ingest(self, raw_dir: Path) -> IngestResult:
        raw_dir = Path(raw_dir)
        client = self.client or httpx.Client(headers={"User-Agent": "anipop-ingest"}, follow_redirects=True)
        try:
            limiter = jikan_limiter(self.requests_per_second, self.requests_per_minute, clock=self.clock, sleep=self.sleep)
            http = CachedClient(client, Path(self.cache_dir or raw_dir / CACHE_DIRNAME), limiter, self.max_retries, self.timeout_s, sleep=self.sleep)
            return _Run(self, http, raw_dir).execute()
        finally:
            if self.client is None:
                client.close()


@dataclass
class _Run:
    """The state of one ingest: the rows so far, the rejects, and why things were skipped."""

    source: JikanSource
    http: CachedClient
    raw_dir: Path
    anime: list[dict] = field(default_factory=list)
    characters: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    portraits: dict[int, str | FetchError] = field(default_factory=dict)  # character id -> path or why not

    def execute(self) -> IngestResult:
        with tqdm(total=self.source.limit, unit="anime", desc="jikan ingest", disable=_no_bar(self.source.progress)) as bar:
            for item in self.iter_anime(bar):
                self.add_anime(item)
                bar.update(1)
                stats = self.http.stats
                bar.set_postfix(fetched=stats["requests fetched"], cached=stats["requests from cache"], refresh=False)
        origin = self.source.base_url
        return IngestResult(
            anime=RAW_ANIME.conform(pd.DataFrame(self.anime, columns=RAW_ANIME.column_names), origin=origin),
            characters=RAW_CHARACTERS.conform(pd.DataFrame(self.characters, columns=RAW_CHARACTERS.column_names), origin=origin),
            quarantine=QUARANTINE.conform(pd.DataFrame(self.quarantine, columns=QUARANTINE.column_names)),
            notes=self.summary(),
        )

    def iter_anime(self, bar: tqdm) -> Iterator[dict]:
        """Listing entries, page by page and type by type, each id once, until `limit` entries."""
        src, seen = self.source, set()
        page_size = min(PAGE_SIZE_MAX, src.limit or PAGE_SIZE_MAX)  # fixed across pages, or page offsets shift
        for anime_type in list(src.types) or [None]:
            page = 1
            while True:
                params = {"page": page, "limit": page_size, "order_by": src.order_by, "sort": src.sort, "type": anime_type,
                          "start_date": _iso(src.start_date), "end_date": _iso(src.end_date)}
                body = self.http.get_json(f"{src.base_url}/anime", params)
                pagination = body.get("pagination") or {}
                if page == 1 and src.limit is None:
                    bar.total = (bar.total or 0) + int((pagination.get("items") or {}).get("total") or 0)
                for item in body.get("data") or []:
                    if item.get("mal_id") in seen:
                        self.skipped["duplicate anime in the listing (ranking moved between pages)"] += 1
                        continue
                    seen.add(item.get("mal_id"))
                    yield item
                    if src.limit is not None and len(seen) >= src.limit:
                        return
                if not pagination.get("has_next_page") or not body.get("data"):
                    break
                page += 1

    def add_anime(self, item: dict) -> None:
        """Keep the anime row (or quarantine it) and add its main characters."""
        row, reject = anime_row(item)
        if reject is not None:
            self.quarantine.append(reject)
            return
        self.anime.append(row)
        anime_id = row["anime_id"]
        try:
            roles = self.http.get_json(f"{self.source.base_url}/anime/{anime_id}/characters").get("data") or []
        except HTTPStatusError as err:
            self.skipped[f"anime whose character list failed (HTTP {err.status})"] += 1
            return
        main_ids: set[int] = set()
        for entry in roles:
            character = entry.get("character") or {}
            if entry.get("role") != "Main" or character.get("mal_id") in main_ids:
                continue
            main_ids.add(character.get("mal_id"))
            self.add_character(anime_id, character)

    def add_character(self, anime_id: int, listed: dict) -> None:
        """One main character: details from /characters/{id} (listing data if that fails), then the portrait."""
        character_id = listed.get("mal_id")
        key = character_key(anime_id, character_id)
        if not isinstance(character_id, int):
            reason = f"character {key}: no integer mal_id in /anime/{anime_id}/characters"
            self.quarantine.append(quarantine_record("ingest", "characters", key, "parse", reason, "mal_id", character_id))
            return
        try:
            detail = self.http.get_json(f"{self.source.base_url}/characters/{character_id}").get("data") or {}
        except HTTPStatusError as err:
            self.skipped[f"character details unavailable (HTTP {err.status}); listing name and picture used"] += 1
            detail = {}
        name = clean_text(detail.get("name") or listed.get("name"))
        if name is None:
            reason = f"character {key}: no name"
            self.quarantine.append(quarantine_record("ingest", "characters", key, "parse", reason, "name", name))
            return
        self.characters.append({
            "anime_id": anime_id, "character_id": character_id, "name": name, "role": "Main",
            "description": clean_text(detail.get("about")),  # None is kept: prepare drops it under its own rule
            "portrait_path": self.portrait(key, character_id, image_url(detail) or image_url(listed)),
        })

    def portrait(self, key: str, character_id: int, url: str | None) -> str | None:
        """The portrait's path relative to raw_dir, or None (no picture on MAL, or quarantined download)."""
        if url is None or any(marker in url for marker in PLACEHOLDER_IMAGE_MARKERS):
            self.skipped["characters without a picture on MAL (portrait_path null)"] += 1
            return None
        if character_id not in self.portraits:  # a character in several anime is downloaded (or fails) once
            relative = f"images/{character_id}.jpg"
            try:
                self.http.download_image(url, self.raw_dir / relative)
                self.portraits[character_id] = relative
            except FetchError as err:
                self.portraits[character_id] = err
        outcome = self.portraits[character_id]
        if isinstance(outcome, FetchError):
            record = quarantine_record("ingest", "characters", key, "portrait_download", str(outcome), "portrait_path", url)
            self.quarantine.append(record)
            return None
        return outcome

    def summary(self) -> list[str]:
        """The lines for IngestResult.notes: what was fetched, what came from disk, what was skipped and why."""
        src, stats = self.source, self.http.stats
        lines = [
            f"jikan: {len(self.anime)} anime, {len(self.characters)} main characters from {src.base_url} "
            f"(order_by={src.order_by} {src.sort}, types={list(src.types) or 'all'}, limit={src.limit}, "
            f"start_date={_iso(src.start_date)}, end_date={_iso(src.end_date)})",
            f"requests: {stats['requests fetched']} fetched, {stats['requests from cache']} from cache, "
            f"{stats['retries']} retries",
            f"portraits: {stats['images downloaded']} downloaded, {stats['images from cache']} from cache, "
            f"{stats['images already on disk']} already on disk",
            f"cached responses never expire: delete {self.http.cache_dir} to refetch current scores",
        ]
        lines += [f"skipped: {count} {reason}" for reason, count in sorted(self.skipped.items())]
        rejected = Counter(record["rule"] for record in self.quarantine)
        lines += [f"quarantined: {count} by rule {rule}" for rule, count in sorted(rejected.items())]
        return lines


def anime_row(item: dict) -> tuple[dict | None, dict | None]:
    """A Jikan anime entry -> (RAW_ANIME row, None), or (None, quarantine record) when a field is unparseable."""
    mal_id = item.get("mal_id")
    try:
        anime_id = parse_id(mal_id)
    except ParseError as err:
        return None, quarantine_record("ingest", "anime", mal_id, "parse", f"listing entry: {err}", "mal_id", mal_id)
    row: dict[str, object] = {"anime_id": anime_id}
    problem = parse_fields(item, _ANIME_FIELDS, row)
    if problem is not None:
        key, why = problem
        reason = f"anime {anime_id}: field '{key}': {why}"
        return None, quarantine_record("ingest", "anime", anime_id, "parse", reason, key, item.get(key))
    aired = item.get("aired") or {}
    row["aired"] = clean_text(aired.get("string"))
    row["premiered"] = premiered(aired)
    for column in ("genres", "themes", "studios"):
        row[column] = ", ".join(n for n in (clean_text(e.get("name")) for e in item.get(column) or []) if n) or None
    row["image_url"] = image_url(item)
    return row, None


def premiered(aired: dict) -> str | None:
    """First air date as ISO text, as precise as MAL knows it: '2013-04-07', '2013-04' or '2013'.

    Why aired.prop first: Jikan fills aired.from with January 1st when MAL only knows the year.
    """
    start = (aired.get("prop") or {}).get("from") or {}
    year, month, day = start.get("year"), start.get("month"), start.get("day")
    if year:
        year, month, day = int(year), int(month or 0), int(day or 0)
        return f"{year:04d}" + (f"-{month:02d}" if month else "") + (f"-{day:02d}" if month and day else "")
    try:
        return date.fromisoformat(str(aired.get("from"))[:10]).isoformat()
    except ValueError:
        return parse_first_air_date(aired.get("string"))


def image_url(entity: dict) -> str | None:
    """images.jpg.image_url of an anime or character entry."""
    return clean_text(((entity.get("images") or {}).get("jpg") or {}).get("image_url"))


def _iso(value: str | date | None) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


def _no_bar(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None lets tqdm hide the bar when stderr is not a terminal (CI, DVC logs)."""
    return None if progress is None else not progress
