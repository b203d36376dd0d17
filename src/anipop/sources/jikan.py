"""The `jikan` source: MyAnimeList through the Jikan v4 REST API — anime, their main characters and portraits.

Per anime: one listing entry (`GET /anime`, 25 a page), `GET /anime/{id}/characters` (roles), and for each main
character `GET /characters/{id}` (the "about" text) plus its portrait from MAL's CDN. Every JSON response and image
is cached under `cache_dir` (params: paths.http_cache_dir, outside the DVC-managed raw folder that `dvc repro`
empties first), portraits are copied to `raw_dir/images/`, so a killed ingest restarts where it stopped.

What a day-long ingest of ~25k anime needs, and where it is handled:
- One bad item never ends the run: a listing page, an anime's character list or a character that still fails
  after retries (Jikan serves lasting 500s for pages it cannot scrape) is quarantined with its URL, status and
  reason, and the run goes on; the summary counts them, and a failure share over `max_failure_share` raises
  IngestIncomplete (the command exits non-zero) after the run, with the summary.
- Stable paging: `order_by=mal_id` (the default) has a unique key; with other orders Jikan has no tiebreak and
  rankings move during a long run, so entries can be skipped or repeated between pages (repeats are dropped,
  skips cannot be seen): fine for a quick top-N, not for a full ingest.
- Refresh: listing pages and character lists expire after `cache_ttl_days`; character bios and portraits do
  not. `refresh="incremental"` re-reads only airing anime, anime that started in the last `recent_days` and ids
  above the last run's highest; the rest comes from the entries the earlier runs stored.
- Jikan quirks: `type` filters are lowercase, `end_date` filters on the date airing *ended* (airing shows drop
  out), `sfw` is a flag (sent only when true), a score of 0 or null means unscored, and characters are named
  "Family, Given" in character lists but "Given Family" in /characters/{id}: names are kept as "Given Family".
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import httpx
import pandas as pd
from tqdm import tqdm

from anipop.core.artifacts import quarantine_record
from anipop.core.utils import atomic_path
from anipop.data.schema import QUARANTINE, RAW_ANIME, RAW_CHARACTERS, character_key
from anipop.sources import IngestIncomplete, IngestResult
from anipop.sources.httpclient import NEGATIVE_STATUSES, CachedClient, FetchError, HTTPStatusError
from anipop.sources.parsing import (
    ParseError,
    clean_synopsis,
    clean_text,
    given_family,
    parse_count,
    parse_duration,
    parse_fields,
    parse_first_air_date,
    parse_id,
    parse_score,
)
from anipop.sources.ratelimit import jikan_limiter

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.jikan.moe/v4"
PAGE_SIZE_MAX = 25  # Jikan rejects limit > 25
CACHE_DIRNAME = ".http_cache"
# From the API's OpenAPI description (anime_search_query_type / _orderby): lowercase, or Jikan answers 400.
ANIME_TYPES = ("tv", "movie", "ova", "special", "ona", "music", "cm", "pv", "tv_special")
ORDER_BY = ("mal_id", "title", "start_date", "end_date", "episodes", "score", "scored_by", "rank", "popularity",
            "members", "favorites")
STABLE_ORDER = "mal_id"
DAY_S = 86400.0
# MAL serves these instead of a picture when a character has none: not a portrait, so not downloaded.
PLACEHOLDER_IMAGE_MARKERS = ("questionmark", "apple-touch-icon")


def jikan_score(value: object) -> float | None:
    """Jikan's score: null, and 0 (what MAL shows for an anime nobody scored), mean unscored; else 1-10."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool) and value == 0):
        return None
    return parse_score(value)


# raw schema column -> (Jikan anime field, parser). A parser raising ParseError quarantines the anime.
_ANIME_FIELDS: dict[str, tuple[str, Callable[[object], object]]] = {
    "title": ("title", clean_text),
    "synopsis": ("synopsis", clean_synopsis),
    "score": ("score", jikan_score),
    "scored_by": ("scored_by", parse_count),
    "members": ("members", parse_count),
    "favorites": ("favorites", parse_count),
    "type": ("type", clean_text),
    "source": ("source", clean_text),
    "episodes": ("episodes", parse_count),
    "rating": ("rating", clean_text),
    "duration": ("duration", parse_duration),
}


@dataclass
class JikanSource:
    """Pages `GET {base_url}/anime` up to `limit` anime (None = all) and fetches their main characters.

    `max_retries` counts attempts per request on 5xx/timeouts (the first included), `rate_limit_attempts` on
    429s. `types` pages each type in turn (Jikan filters one type per query); `limit` is the total over all
    types. `client`, `sleep`, `clock` (monotonic) and `wall_clock` (cache ages, "today") are injectable so tests
    run against respx or a local server on a fake clock.
    """

    base_url: str = DEFAULT_BASE_URL
    limit: int | None = None
    start_date: str | date | None = None  # first aired on/after
    end_date: str | date | None = None    # finished airing on/before (airing shows are excluded by Jikan)
    types: Sequence[str] = ()
    sfw: bool = False
    order_by: str = STABLE_ORDER
    sort: str = "asc"
    refresh: Literal["full", "incremental"] = "incremental"
    cache_ttl_days: float = 6.0
    recent_days: int = 90
    max_failure_share: float = 0.05
    max_retries: int = 5
    rate_limit_attempts: int = 8
    rate_limit_wait_s: float = 60.0
    timeout_s: float = 30.0
    requests_per_second: int = 1
    requests_per_minute: int = 50
    client: httpx.Client | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    progress: bool | None = None  # None: a bar only on a terminal
    cache_dir: Path | None = None  # JSON responses and images; default raw_dir/.http_cache
    staff_roles: Sequence[str] = ()  # key staff kept (ingest.staff_roles): one GET /anime/{id}/staff more an anime
    cast_size: int = 10  # voice actors kept: Japanese, of the main characters first (as MAL's page lists them)
    name: str = "jikan"

    def __post_init__(self) -> None:
        bad = [t for t in self.types if t not in ANIME_TYPES]
        if bad:
            hint = f" (lowercase: {[t.lower() for t in bad]})" if all(t.lower() in ANIME_TYPES for t in bad) else ""
            raise ValueError(f"jikan types {bad} are not Jikan anime types {list(ANIME_TYPES)}{hint}")
        if self.order_by not in ORDER_BY:
            raise ValueError(f"jikan order_by {self.order_by!r} is not one of {list(ORDER_BY)}")
        if self.refresh not in ("full", "incremental"):
            raise ValueError(f"jikan refresh {self.refresh!r} must be full or incremental")

    def ingest(self, raw_dir: Path) -> IngestResult:
        raw_dir = Path(raw_dir)
        client = self.client or httpx.Client(headers={"User-Agent": "anipop-ingest"}, follow_redirects=True)
        try:
            limiter = jikan_limiter(self.requests_per_second, self.requests_per_minute, clock=self.clock, sleep=self.sleep)
            http = CachedClient(
                client, Path(self.cache_dir or raw_dir / CACHE_DIRNAME), {httpx.URL(self.base_url).host: limiter},
                self.max_retries, self.timeout_s, sleep=self.sleep, clock=self.clock, wall_clock=self.wall_clock,
                rate_limit_attempts=self.rate_limit_attempts, rate_limit_wait_s=self.rate_limit_wait_s,
            )
            return _Run(self, http, raw_dir).execute()
        finally:
            if self.client is None:
                client.close()

    @property
    def ttl_s(self) -> float:
        return self.cache_ttl_days * DAY_S

    def filters(self, anime_type: str | None) -> dict[str, object]:
        """The query parameters that select which anime (not their order or page) for one type."""
        return {"type": anime_type, "sfw": "true" if self.sfw else None,
                "start_date": _iso(self.start_date), "end_date": _iso(self.end_date)}

    def signature(self) -> str:
        """Names the selection (base URL, filters, limit and order): incremental runs build on a run of the same one."""
        key = json.dumps([self.base_url, sorted(self.types), self.sfw, _iso(self.start_date), _iso(self.end_date),
                          self.limit, self.order_by, self.sort], default=str)
        return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class _Run:
    """The state of one ingest: the rows so far, the rejects, the failures, and why things were skipped."""

    source: JikanSource
    http: CachedClient
    raw_dir: Path
    anime: list[dict] = field(default_factory=list)
    characters: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    portraits: dict[int, str | FetchError] = field(default_factory=dict)  # character id -> path or why not
    attempted: Counter[str] = field(default_factory=Counter)  # anime, characters, listing (entries of failed pages)
    failed: Counter[str] = field(default_factory=Counter)
    mode: str = "full"
    started: float = 0.0

    def execute(self) -> IngestResult:
        src = self.source
        self.started = src.clock()
        state = self.load_state()
        self.mode = src.refresh
        if self.mode == "incremental" and state is None:
            self.skipped["incremental refresh without an earlier complete run of this selection: full ingest"] += 1
            self.mode = "full"
        if src.order_by != STABLE_ORDER and self.mode == "full":
            log.warning("jikan: order_by=%s has no tiebreak on the server; a long ingest may skip anime between "
                        "pages (order_by=mal_id does not)", src.order_by)
        ids: list[int] = []
        with tqdm(total=src.limit, unit="anime", desc="jikan ingest", disable=_no_bar(src.progress)) as bar:
            entries = self.full_listing(bar) if self.mode == "full" else self.incremental_listing(state or {})
            for item, refreshed in entries:
                if isinstance(item.get("mal_id"), int):
                    ids.append(item["mal_id"])
                    if refreshed:
                        self.store_entry(item)
                self.add_anime(item, src.ttl_s if refreshed else None)
                bar.update(1)
                stats = self.http.stats
                bar.set_postfix(fetched=stats["requests fetched"], cached=stats["requests from cache"], refresh=False)
        self.save_state(ids)
        origin = src.base_url
        result = IngestResult(
            anime=RAW_ANIME.conform(pd.DataFrame(self.anime, columns=RAW_ANIME.column_names), origin=origin),
            characters=RAW_CHARACTERS.conform(pd.DataFrame(self.characters, columns=RAW_CHARACTERS.column_names), origin=origin),
            quarantine=QUARANTINE.conform(pd.DataFrame(self.quarantine, columns=QUARANTINE.column_names)),
            notes=self.summary(),
        )
        if self.failure_share() > src.max_failure_share:
            raise IngestIncomplete("jikan ingest incomplete: " + "; ".join(result.notes))
        return result

    # --- listing -------------------------------------------------------------------------------------------

    def full_listing(self, bar: tqdm) -> Iterator[tuple[dict, bool]]:
        """Listing entries, page by page and type by type, each id once, until `limit` entries."""
        src, seen = self.source, set()
        for anime_type in list(src.types) or [None]:
            query = {**src.filters(anime_type), "order_by": src.order_by, "sort": src.sort}
            for item, total in self.pages(query, src.ttl_s):
                if total is not None:
                    if src.limit is None:
                        bar.total = (bar.total or 0) + total
                    continue
                if item.get("mal_id") in seen:
                    self.skipped["duplicate anime in the listing (ranking moved between pages)"] += 1
                    continue
                seen.add(item.get("mal_id"))
                yield item, True
                if src.limit is not None and len(seen) >= src.limit:
                    return

    def incremental_listing(self, state: dict) -> Iterator[tuple[dict, bool]]:
        """Fresh entries for airing anime, anime started in the last `recent_days` and ids above the last run's
        highest; every other anime of the last run from its stored entry (its character list from the cache)."""
        src = self.source
        last_max = int(state.get("max_mal_id") or 0)
        today = datetime.fromtimestamp(src.wall_clock(), tz=UTC).date()
        recent = today - timedelta(days=src.recent_days)
        if src.start_date is not None:
            recent = max(recent, date.fromisoformat(_iso(src.start_date)))
        fresh: dict[int, dict] = {}
        for anime_type in list(src.types) or [None]:
            base = src.filters(anime_type)
            queries = [
                ({**base, "status": "airing", "order_by": STABLE_ORDER, "sort": "asc"}, None),
                ({**base, "start_date": recent.isoformat(), "order_by": STABLE_ORDER, "sort": "asc"}, None),
                ({**base, "order_by": STABLE_ORDER, "sort": "desc"}, last_max),  # new ids, newest first
            ]
            for query, stop_at in queries:
                for item, total in self.pages(query, src.ttl_s, stop_at_id=stop_at):
                    if total is None and isinstance(item.get("mal_id"), int):
                        fresh[item["mal_id"]] = item
        known = [int(i) for i in state.get("ids") or []]
        order = known + sorted(set(fresh) - set(known))
        self.skipped[f"anime refreshed (airing, started since {recent}, or new since the last run)"] += len(fresh)
        for count, anime_id in enumerate(order):
            if src.limit is not None and count >= src.limit:
                return
            if anime_id in fresh:
                yield fresh[anime_id], True
                continue
            entry = self.load_entry(anime_id)
            if entry is None:
                self.skipped["anime of the last run missing from the entry store (not ingested)"] += 1
                continue
            yield entry, False

    def pages(self, query: dict, max_age_s: float | None, stop_at_id: int | None = None) -> Iterator[tuple[dict, int | None]]:
        """(entry, None) for each entry of every page of `query`; first (_, total) once the total is known.

        A page that still fails after retries is quarantined and skipped (its entries count as failed); the
        next pages are still read when the last page number is known. `stop_at_id` ends a descending listing
        at the first id at or below it.
        """
        src = self.source
        page_size = min(PAGE_SIZE_MAX, src.limit or PAGE_SIZE_MAX)  # fixed across pages, or page offsets shift
        page, last_page = 1, None
        label = " ".join(f"{k}={v}" for k, v in query.items() if v is not None)
        while True:
            params = {**query, "page": page, "limit": page_size}
            try:
                body = self.http.get_json(f"{src.base_url}/anime", params, max_age_s)
            except FetchError as err:
                self.record_failure("listing", f"{label} page={page}", err, weight=page_size)
                if last_page is not None and page < last_page:
                    page += 1
                    continue
                return
            pagination = body.get("pagination") or {}
            last_page = pagination.get("last_visible_page") or last_page
            if page == 1:
                yield {}, int((pagination.get("items") or {}).get("total") or 0)
            for item in body.get("data") or []:
                if stop_at_id is not None and isinstance(item.get("mal_id"), int) and item["mal_id"] <= stop_at_id:
                    return
                yield item, None
            if not pagination.get("has_next_page") or not body.get("data"):
                return
            page += 1

    # --- one anime, one character ---------------------------------------------------------------------------

    def add_anime(self, item: dict, max_age_s: float | None) -> None:
        """Keep the anime row (or quarantine it) and add its main characters; `max_age_s` bounds the age of
        its cached character list (None: any age, for anime an incremental run does not refresh)."""
        self.attempted["anime"] += 1
        row, reject = anime_row(item)
        if reject is not None:
            self.quarantine.append(reject)
            return
        anime_id = row["anime_id"]
        try:
            roles = self.http.get_json(f"{self.source.base_url}/anime/{anime_id}/characters", max_age_s=max_age_s)
        except FetchError as err:  # without its characters the row would claim the anime has none
            self.record_failure("anime", anime_id, err)
            return
        row["cast"] = cast_names(roles.get("data") or [], self.source.cast_size)
        row["staff"] = self.staff(anime_id, max_age_s) if self.source.staff_roles else None
        self.anime.append(row)
        main_ids: set[int] = set()
        for entry in roles.get("data") or []:
            character = entry.get("character") or {}
            if entry.get("role") != "Main" or character.get("mal_id") in main_ids:
                continue
            main_ids.add(character.get("mal_id"))
            self.add_character(anime_id, character)

    def staff(self, anime_id: int, max_age_s: float | None) -> str | None:
        """The anime's key staff ('Given Family', comma-separated); None when the request fails (the anime keeps
        everything else: the field is missing, as for a pitch that names no staff)."""
        try:
            payload = self.http.get_json(f"{self.source.base_url}/anime/{anime_id}/staff", max_age_s=max_age_s)
        except FetchError as err:
            log.warning("jikan: anime %s: staff unavailable (%s); the field is left missing", anime_id, err)
            self.skipped["anime whose staff could not be fetched (field missing)"] += 1
            return None
        return staff_names(payload.get("data") or [], self.source.staff_roles)

    def add_character(self, anime_id: int, listed: dict) -> None:
        """One main character: details from /characters/{id} (listing data when it is gone: 404), then the portrait."""
        self.attempted["characters"] += 1
        character_id = listed.get("mal_id")
        key = character_key(anime_id, character_id)
        if not isinstance(character_id, int):
            reason = f"character {key}: no integer mal_id in /anime/{anime_id}/characters"
            self.quarantine.append(quarantine_record("ingest", "characters", key, "parse", reason, "mal_id", character_id))
            return
        try:
            detail = self.http.get_json(f"{self.source.base_url}/characters/{character_id}").get("data") or {}
        except HTTPStatusError as err:
            if err.status not in NEGATIVE_STATUSES:
                self.record_failure("characters", key, err)
                return
            self.skipped[f"character details gone (HTTP {err.status}); listing name and picture used"] += 1
            detail = {}
        except FetchError as err:
            self.record_failure("characters", key, err)
            return
        name = clean_text(detail.get("name")) or given_family(clean_text(listed.get("name")))
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

    def record_failure(self, table: str, key: object, err: FetchError, weight: int = 1) -> None:
        """Quarantine an item whose request failed for good: rule fetch_<status or kind>, the URL as value."""
        self.failed[table] += weight
        if table == "listing":
            self.attempted["listing"] += weight
        log.warning("jikan: %s %s quarantined: %s", table, key, err)
        self.quarantine.append(quarantine_record("ingest", table, key, f"fetch_{err.kind}", str(err), "url", err.url))

    # --- the run's memory: stored entries and the last complete run's state ------------------------------------

    def entry_path(self, anime_id: int) -> Path:
        return self.http.cache_dir / "jikan-entries" / f"{anime_id}.json"

    def store_entry(self, item: dict) -> None:
        """The latest listing entry of an anime, which incremental runs use for anime they do not refresh."""
        with atomic_path(self.entry_path(item["mal_id"])) as tmp:
            tmp.write_text(json.dumps(item), encoding="utf-8")

    def load_entry(self, anime_id: int) -> dict | None:
        try:
            return json.loads(self.entry_path(anime_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def state_path(self) -> Path:
        return self.http.cache_dir / f"jikan-state-{self.source.signature()}.json"

    def load_state(self) -> dict | None:
        try:
            state = json.loads(self.state_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) and state.get("ids") else None

    def save_state(self, ids: list[int]) -> None:
        """Written only when the listing ran to its end with every page read: a killed run, or one that lost a
        listing page, leaves the previous state (the next run is then full, and retries the page)."""
        if not ids or self.failed["listing"]:
            return
        state = {"ids": ids, "max_mal_id": max(ids), "finished_at": self.source.wall_clock(), "mode": self.mode}
        with atomic_path(self.state_path()) as tmp:
            tmp.write_text(json.dumps(state), encoding="utf-8")

    # --- the summary -----------------------------------------------------------------------------------------

    def failure_share(self) -> float:
        """Failed items over attempted ones: anime, characters and the entries of failed listing pages."""
        attempted = self.attempted["anime"] + self.attempted["characters"] + self.attempted["listing"]
        return sum(self.failed.values()) / attempted if attempted else 0.0

    def summary(self) -> list[str]:
        """The lines for IngestResult.notes: what was fetched, what came from disk, what failed and why."""
        src, stats, waited = self.source, self.http.stats, self.http.waited_s
        lines = [
            f"jikan: {len(self.anime)} anime, {len(self.characters)} main characters from {src.base_url} "
            f"({self.mode} refresh, order_by={src.order_by} {src.sort}, types={list(src.types) or 'all'}, "
            f"sfw={src.sfw}, limit={src.limit}, start_date={_iso(src.start_date)}, end_date={_iso(src.end_date)})",
            f"requests: {stats['requests fetched']} fetched, {stats['requests from cache']} from cache, "
            f"{stats['retries']} retries",
            f"http: {stats['requests sent']} sent, {stats['negative results from cache']} cached 404s reused, "
            f"{stats['expired responses refetched']} expired responses refetched, {stats['gave up']} given up",
            "waits: " + ", ".join(f"{reason} {seconds:.0f} s" for reason, seconds in sorted(waited.items()) if seconds)
            + f" (run took {src.clock() - self.started:.0f} s)",
            f"portraits: {stats['images downloaded']} downloaded, {stats['images from cache']} from cache, "
            f"{stats['images already on disk']} already on disk",
            f"failures: {self.failed['anime']} anime, {self.failed['characters']} characters, "
            f"{self.failed['listing']} listing entries (failed pages); share {self.failure_share():.2%} "
            f"(max_failure_share {src.max_failure_share:.2%})",
            f"cache: listing pages and character lists older than {src.cache_ttl_days:g} days are refetched; "
            f"character bios and portraits are kept",
        ]
        if src.order_by != STABLE_ORDER:
            lines.append(f"caveat: order_by={src.order_by} has no tiebreak; anime can be skipped between pages")
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
    for column, key in (("genres", "genres"), ("themes", "themes"), ("studios", "studios"),
                        ("demographic", "demographics"), ("producers", "producers")):
        row[column] = ", ".join(n for n in (clean_text(e.get("name")) for e in item.get(key) or []) if n) or None
    row["image_url"] = image_url(item)
    return row, None


def staff_names(entries: list, roles: Sequence[str]) -> str | None:
    """GET /anime/{id}/staff's `data` (OpenAPI `anime_staff`: person.name, positions[]) -> the people holding one of
    `roles`, 'Given Family', comma-separated, each once."""
    wanted = {role.lower() for role in roles}
    names: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        positions = {str(p).strip().lower() for p in entry.get("positions") or []}
        name = given_family(clean_text((entry.get("person") or {}).get("name")))
        if name and positions & wanted and name.replace(",", " ") not in names:
            names.append(" ".join(name.replace(",", " ").split()))
    return ", ".join(names) or None


def cast_names(entries: list, size: int) -> str | None:
    """GET /anime/{id}/characters' `data` (OpenAPI `anime_characters`: role, voice_actors[].person.name, language)
    -> up to `size` Japanese voice actors, main characters' first, 'Given Family', comma-separated, each once."""
    ordered = sorted((e for e in entries if isinstance(e, dict)), key=lambda e: e.get("role") != "Main")
    names: list[str] = []
    for entry in ordered:
        for actor in entry.get("voice_actors") or []:
            if not isinstance(actor, dict) or actor.get("language") != "Japanese":
                continue
            name = given_family(clean_text((actor.get("person") or {}).get("name")))
            name = " ".join(name.replace(",", " ").split()) if name else None
            if name and name not in names and len(names) < size:
                names.append(name)
    return ", ".join(names) or None


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
