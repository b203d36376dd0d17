"""HTTP for online sources: a disk cache of JSON responses, per-host rate limiting, retries, verified image downloads.

Why a disk cache: an ingest of thousands of anime takes hours at Jikan's limits; caching every JSON response
(atomic writes, with the time it was fetched) lets a killed run restart where it stopped without refetching, and
lets a later run refresh only what is older than a TTL. A 404 is cached too (a negative result): the same missing
character is listed by many anime and must not be asked for again each time.

Why a hand-written retry loop: two budgets with different waits. A 429 from Jikan carries no Retry-After and its
window is a minute, so an exponential backoff of a few seconds retries into the same window and gives up; a 429
waits at least a whole window (or the server's Retry-After) and gets its own, larger number of attempts, while
5xx, timeouts and lost connections back off exponentially with jitter. A 429 also holds the host's limiter, so
every request sharing it pauses, not only the refused one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from anipop.core.utils import atomic_path
from anipop.data.images import image_problem
from anipop.sources.ratelimit import RateLimiter

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 300.0  # a server asking for more than 5 minutes is treated as asking for 5
NEGATIVE_STATUSES = (404, 410)  # cached like a body: the thing does not exist, asking again will not change that


class FetchError(RuntimeError):
    """A request failed for good (retries exhausted, or an error status); names the URL, and the last status."""

    def __init__(self, message: str, url: str | None = None, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.attempts = attempts

    @property
    def kind(self) -> str:
        """A short label for quarantine rules and summaries: http_500, http_404, timeout, network, image, ..."""
        if self.status is not None:
            return f"http_{self.status}"
        cause = self.__cause__
        if isinstance(cause, httpx.TimeoutException):
            return "timeout"
        if isinstance(cause, httpx.TransportError):
            return "network"
        return "invalid_response"


class HTTPStatusError(FetchError):
    """The server answered with a status that retrying will not fix (404, 400, ...)."""

    def __init__(self, url: str, status: int, cached: bool = False) -> None:
        super().__init__(f"GET {url}: HTTP {status}" + (" (cached negative result)" if cached else ""), url, status)


class ImageError(FetchError):
    """The downloaded bytes do not decode as an image (truncated, HTML error page, ...)."""

    @property
    def kind(self) -> str:
        return "image"


class RetryableStatus(Exception):
    """A 429 or 5xx answer; carries the server's Retry-After (seconds) when it sent one."""

    def __init__(self, url: str, status: int, retry_after: float | None) -> None:
        super().__init__(f"GET {url}: HTTP {status}")
        self.status = status
        self.retry_after = retry_after


RETRYABLE = (RetryableStatus, httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After as seconds (either form the RFC allows), capped; None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def url_digest(url: str) -> str:
    """The file name stem under which a URL's response is cached (JSON body or image bytes)."""
    return hashlib.sha256(url.encode()).hexdigest()[:40]


def is_decodable_image(path: Path) -> bool:
    """True when Pillow can decode every pixel of `path` (the same check prepare and validate apply)."""
    return image_problem(path) is None


class CachedClient:
    """GETs JSON through a disk cache, the rate limiter of the URL's host, and retries; downloads verified images.

    `limiters` maps a host name to the limiter every request to that host goes through (JSON and images alike);
    hosts not in it (a CDN) are not limited. `max_attempts` bounds attempts on 5xx/timeouts/connection errors,
    `rate_limit_attempts` on 429s, each counted separately. `clock` (monotonic) drives waits, `wall_clock` the
    ages of cached responses; both are injectable so tests run on a fake clock.
    """

    def __init__(
        self,
        client: httpx.Client,
        cache_dir: Path,
        limiters: Mapping[str, RateLimiter],
        max_attempts: int,
        timeout_s: float,
        sleep: Callable[[float], None] = time.sleep,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        rate_limit_attempts: int = 8,
        rate_limit_wait_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._cache_dir = Path(cache_dir)
        self._limiters = dict(limiters)
        self._max_attempts = max_attempts
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._rate_limit_attempts = rate_limit_attempts
        self._rate_limit_wait_s = rate_limit_wait_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        self.stats: Counter[str] = Counter()
        self.waited_s: Counter[str] = Counter()  # seconds slept, by reason (rate limit, 429, backoff)

    @property
    def cache_dir(self) -> Path:
        return self._cache_dir

    def cache_path(self, url: str) -> Path:
        """Where the JSON body of `url` (the full URL, query included) is cached."""
        return self._cache_dir / f"{url_digest(url)}.json"

    @staticmethod
    def full_url(url: str, params: dict[str, Any] | None = None) -> str:
        """url?params as sent (None values left out): the cache key."""
        return str(httpx.URL(url, params={k: v for k, v in (params or {}).items() if v is not None}))

    def get_json(self, url: str, params: dict[str, Any] | None = None, max_age_s: float | None = None) -> Any:
        """The JSON body of GET url?params, from the cache when fetched less than `max_age_s` ago (None: any age).

        Raises HTTPStatusError for a 404 (also when it comes from the cache) and FetchError when retries run out.
        """
        full_url = self.full_url(url, params)
        cached = self._read_cache(full_url, max_age_s)
        if cached is not None:
            if cached.get("status") in NEGATIVE_STATUSES:
                self.stats["negative results from cache"] += 1
                raise HTTPStatusError(full_url, int(cached["status"]), cached=True)
            self.stats["requests from cache"] += 1
            return cached["data"]
        try:
            response = self._get_with_retries(full_url)
        except HTTPStatusError as err:
            if err.status in NEGATIVE_STATUSES:
                self._write_cache(full_url, None, status=err.status)
            raise
        try:
            body = response.json()
        except ValueError as err:
            raise FetchError(f"GET {full_url}: response is not JSON: {err}", full_url, None) from err
        self._write_cache(full_url, body)
        self.stats["requests fetched"] += 1
        return body

    def download_image(self, url: str, dest: Path) -> bool:
        """Save the image at `url` to `dest` unless a decodable copy is there; True when it was downloaded.

        The bytes go to a temp file that must decode with Pillow before it is renamed onto `dest`, so a
        truncated download never leaves a file a later step would choke on. Raises ImageError otherwise.
        Portraits never expire: a character's picture does not change with the anime's score.
        """
        if dest.exists() and is_decodable_image(dest):
            self.stats["images already on disk"] += 1
            return False
        cached = self._cache_dir / "images" / f"{url_digest(url)}{dest.suffix}"
        if cached.exists() and is_decodable_image(cached):
            # `dvc repro` empties the raw folder before ingest reruns; the cache outside it survives
            with atomic_path(dest) as tmp:
                shutil.copyfile(cached, tmp)
            self.stats["images from cache"] += 1
            return False
        response = self._get_with_retries(url)
        with atomic_path(cached) as tmp:
            tmp.write_bytes(response.content)
            if not is_decodable_image(tmp):
                raise ImageError(f"GET {url}: {len(response.content)} bytes that do not decode as an image", url, None)
        with atomic_path(dest) as tmp:
            shutil.copyfile(cached, tmp)
        self.stats["images downloaded"] += 1
        return True

    def _read_cache(self, full_url: str, max_age_s: float | None) -> dict | None:
        """The cached entry, or None when absent, unreadable or older than `max_age_s` (then it is fetched)."""
        path = self.cache_path(full_url)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("url") != full_url:
            return None
        if max_age_s is not None and self._wall_clock() - float(entry.get("fetched_at") or 0.0) >= max_age_s:
            self.stats["expired responses refetched"] += 1
            return None
        return entry

    def _write_cache(self, full_url: str, body: Any, status: int = 200) -> None:
        entry = {"url": full_url, "status": status, "fetched_at": self._wall_clock(), "data": body}
        with atomic_path(self.cache_path(full_url)) as tmp:
            tmp.write_text(json.dumps(entry), encoding="utf-8")

    def _get_with_retries(self, url: str) -> httpx.Response:
        """GET, retrying 429s (a window each) and 5xx/timeouts/connection errors (backoff), each on its own budget."""
        limiter = self._limiters.get(httpx.URL(url).host)
        failures: Counter[str] = Counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._get_once(url, limiter)
            except RETRYABLE as error:
                status = getattr(error, "status", None)
                budget_name = "rate_limited" if status == 429 else "errors"
                failures[budget_name] += 1
                budget = self._rate_limit_attempts if status == 429 else self._max_attempts
                if failures[budget_name] >= budget:
                    self.stats["gave up"] += 1
                    raise FetchError(f"GET {url}: gave up after {attempt} attempts ({failures['rate_limited']} "
                                     f"rate-limited), last error: {error!r}", url, status, attempt) from error
                wait, reason = self._wait(error, failures[budget_name])
                if status == 429 and limiter is not None:
                    limiter.hold(wait)
                self.stats["retries"] += 1
                self.stats[f"waits after {reason}"] += 1
                self.waited_s[reason] += wait
                log.warning("GET %s: attempt %d failed (%r); retrying in %.1f s", url, attempt, error, wait)
                self._sleep(wait)

    def _get_once(self, url: str, limiter: RateLimiter | None) -> httpx.Response:
        if limiter is not None:
            self.waited_s["rate limiter"] += limiter.acquire()
        self.stats["requests sent"] += 1
        response = self._client.get(url, timeout=self._timeout_s)
        status = response.status_code
        if status == 429 or status >= 500:
            honoured = retry_after_seconds(response) if status in (429, 503) else None
            raise RetryableStatus(url, status, honoured)
        if response.is_error:
            raise HTTPStatusError(url, status)
        return response

    def _wait(self, error: BaseException, failures: int) -> tuple[float, str]:
        """Seconds before the next attempt, and why: the server's Retry-After when it gave one; for a 429
        without one, a whole rate-limit window (it certainly covers the rest of the server's current window)
        plus jitter; otherwise exponential backoff with jitter."""
        retry_after = getattr(error, "retry_after", None)
        jitter = self._rng.uniform(0.0, self._backoff_initial_s)
        if getattr(error, "status", None) == 429:
            if retry_after is not None:
                return max(retry_after, 0.0), "429 (Retry-After)"
            return self._rate_limit_wait_s + jitter, "429 (no Retry-After: a whole window)"
        if retry_after is not None:
            return retry_after, "503 (Retry-After)"
        backoff = min(self._backoff_max_s, self._backoff_initial_s * 2 ** (failures - 1))
        return backoff + jitter, "error backoff"
