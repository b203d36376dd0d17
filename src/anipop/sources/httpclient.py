"""HTTP for online sources: a disk cache of JSON responses, rate limiting, retries, verified image downloads.

Why a disk cache: an ingest of thousands of anime takes hours at Jikan's 60 requests a minute; caching every JSON
response under the raw folder (atomic writes) lets a killed run restart where it stopped, without refetching.
Why tenacity: retries with exponential backoff + jitter, honouring Retry-After, are easy to get subtly wrong by hand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from anipop.images import image_problem
from anipop.sources.ratelimit import RateLimiter
from anipop.utils import atomic_path

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 300.0  # a server asking for more than 5 minutes is treated as asking for 5


class FetchError(RuntimeError):
    """A request failed for good (retries exhausted, or an error status); the message names the URL."""


class HTTPStatusError(FetchError):
    """The server answered with a status that retrying will not fix (404, 400, ...)."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"GET {url}: HTTP {status}")
        self.status = status


class ImageError(FetchError):
    """The downloaded bytes do not decode as an image (truncated, HTML error page, ...)."""


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
    """GETs JSON through a disk cache, a rate limiter and tenacity retries; downloads verified images."""

    def __init__(
        self,
        client: httpx.Client,
        cache_dir: Path,
        limiter: RateLimiter,
        max_attempts: int,
        timeout_s: float,
        sleep: Callable[[float], None] = time.sleep,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
    ) -> None:
        self._client = client
        self._cache_dir = Path(cache_dir)
        self._limiter = limiter
        self._max_attempts = max_attempts
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(initial=backoff_initial_s, max=backoff_max_s, jitter=backoff_initial_s)
        self.stats: Counter[str] = Counter()

    @property
    def cache_dir(self) -> Path:
        return self._cache_dir

    def cache_path(self, url: str) -> Path:
        """Where the JSON body of `url` (the full URL, query included) is cached."""
        return self._cache_dir / f"{url_digest(url)}.json"

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """The JSON body of GET url?params, from the cache when a previous run fetched it."""
        full_url = str(httpx.URL(url, params={k: v for k, v in (params or {}).items() if v is not None}))
        cached = self._read_cache(full_url)
        if cached is not None:
            self.stats["requests from cache"] += 1
            return cached["data"]
        response = self._get_with_retries(full_url, rate_limited=True)
        try:
            body = response.json()
        except ValueError as err:
            raise FetchError(f"GET {full_url}: response is not JSON: {err}") from err
        with atomic_path(self.cache_path(full_url)) as tmp:
            tmp.write_text(json.dumps({"url": full_url, "data": body}), encoding="utf-8")
        self.stats["requests fetched"] += 1
        return body

    def download_image(self, url: str, dest: Path) -> bool:
        """Save the image at `url` to `dest` unless a decodable copy is there; True when it was downloaded.

        The bytes go to a temp file that must decode with Pillow before it is renamed onto `dest`, so a
        truncated download never leaves a file a later step would choke on. Raises ImageError otherwise.
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
        response = self._get_with_retries(url, rate_limited=False)  # a CDN, not the rate-limited API
        with atomic_path(cached) as tmp:
            tmp.write_bytes(response.content)
            if not is_decodable_image(tmp):
                raise ImageError(f"GET {url}: {len(response.content)} bytes that do not decode as an image")
        with atomic_path(dest) as tmp:
            shutil.copyfile(cached, tmp)
        self.stats["images downloaded"] += 1
        return True

    def _read_cache(self, full_url: str) -> dict | None:
        """The cached entry, or None when absent or unreadable (then it is simply fetched again)."""
        path = self.cache_path(full_url)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and entry.get("url") == full_url else None

    def _get_with_retries(self, url: str, rate_limited: bool) -> httpx.Response:
        """GET with tenacity: retry 429/5xx/timeouts/connection errors, then raise FetchError naming the URL."""
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RETRYABLE),
            sleep=self._sleep,
            before_sleep=self._log_retry,
        )
        try:
            return retrying(self._get_once, url, rate_limited)
        except RetryError as err:
            last = err.last_attempt.exception()
            raise FetchError(f"GET {url}: gave up after {self._max_attempts} attempts, last error: {last!r}") from last

    def _get_once(self, url: str, rate_limited: bool) -> httpx.Response:
        if rate_limited:
            self._limiter.acquire()
        response = self._client.get(url, timeout=self._timeout_s)
        status = response.status_code
        if status == 429 or status >= 500:
            honoured = retry_after_seconds(response) if status in (429, 503) else None
            raise RetryableStatus(url, status, honoured)
        if response.is_error:
            raise HTTPStatusError(url, status)
        return response

    def _wait(self, state: RetryCallState) -> float:
        """The server's Retry-After when it gave one, else exponential backoff with jitter."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableStatus) and error.retry_after is not None:
            return error.retry_after
        return self._backoff(state)

    def _log_retry(self, state: RetryCallState) -> None:
        self.stats["retries"] += 1
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        url = state.args[0] if state.args else "?"
        log.warning("GET %s: attempt %d failed (%r); retrying in %.1f s", url, state.attempt_number, error, wait)
