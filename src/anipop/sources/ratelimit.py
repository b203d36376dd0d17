"""A client-side rate limiter for APIs that publish several limits at once (Jikan: 3 per second, 60 per minute).

Why not a plain token bucket: a bucket of 3 refilled at 3/s lets a 4th request through 0.33 s after a burst of 3,
so 4 land inside one second and Jikan answers 429. Here each window is a bucket whose tokens come back exactly
`period` seconds after they were spent (a sliding-window log), which guarantees that no window of `period` seconds
ever holds more than `max_calls` requests. The clock and sleep are injected so tests run on a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable


class RateLimiter:
    """Blocks in `acquire()` until a call is allowed by every (max_calls, period_s) window."""

    def __init__(
        self,
        windows: Iterable[tuple[int, float]],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._windows = [(int(n), float(p)) for n, p in windows]
        if not self._windows or any(n < 1 or p <= 0 for n, p in self._windows):
            raise ValueError(f"rate limit windows must be (calls >= 1, seconds > 0), got {self._windows}")
        self._sent: list[deque[float]] = [deque(maxlen=n) for n, _ in self._windows]
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._held_until = float("-inf")

    def hold(self, seconds: float) -> None:
        """Let no call through for `seconds` from now: the server said 429, so every caller sharing this
        limiter (other threads, other sources of the same host) pauses, not only the one that was refused."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))

    def acquire(self) -> float:
        """Wait until the next call is allowed, record it, and return how long we waited."""
        with self._lock:
            now = self._clock()
            wait = max((self._wait_for(sent, period, now) for sent, (_, period) in zip(self._sent, self._windows)), default=0.0)
            wait = max(wait, self._held_until - now)
            if wait > 0:
                self._sleep(wait)
            # Why max(): a fake (or coarse) clock may not have moved; the call still counts at the time we waited for.
            stamp = max(self._clock(), now + wait)
            for sent in self._sent:
                sent.append(stamp)
            return wait

    @staticmethod
    def _wait_for(sent: deque[float], period: float, now: float) -> float:
        """Seconds until the oldest of a full window's calls leaves it (0 when the window has room)."""
        if len(sent) < (sent.maxlen or 0):
            return 0.0
        return max(0.0, sent[0] + period - now)


def jikan_limiter(
    per_second: int, per_minute: int, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
) -> RateLimiter:
    """Jikan's two windows (requests per second and per minute), at the budget params.yaml sets: Jikan documents
    3/s and 60/min, but answers 429 to some clients at ~1 request per 1.1 s under load, so the default is 1/s, 50/min."""
    return RateLimiter([(per_second, 1.0), (per_minute, 60.0)], clock=clock, sleep=sleep)
