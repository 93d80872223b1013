"""A client-side rate limiter: at most N events in any window of W seconds.

Platforms that publish a limit (Arize: 300 GraphQL mutations a minute) are cheaper to obey
than to trip: a refused request costs a retry, and some platforms count refused calls too.
The clock and the sleep are injected, so tests run a ten-minute schedule in no time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """A sliding-window limiter.

    :param limit: at most this many events ...
    :param period: ... in any window of this many seconds.
    :param clock: seconds, monotonic (tests pass a fake one).
    :param sleep: how to wait (tests pass one that advances the fake clock).

    An event at time ``t`` stops counting at ``t + period``: a request sent at that moment
    sees ``limit`` events at most in the window ``(now - period, now]``.
    """

    def __init__(
        self,
        limit: int,
        period: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("limit must be at least 1 and period positive")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._events: deque[tuple[float, int]] = deque()
        self.waited = 0.0

    def _used(self, now: float) -> int:
        while self._events and self._events[0][0] <= now - self.period:
            self._events.popleft()
        return sum(n for _, n in self._events)

    def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` more events fit in the window, then count them."""
        if n > self.limit:
            raise ValueError(f"{n} events can never fit in a limit of {self.limit}")
        while True:
            now = self._clock()
            used = self._used(now)
            if used + n <= self.limit:
                self._events.append((now, n))
                return
            # Wait for the oldest events to leave the window until n more fit.
            excess = used + n - self.limit
            freed = 0
            until = now
            for t, count in self._events:
                freed += count
                until = t + self.period
                if freed >= excess:
                    break
            delay = max(until - now, 1e-3)
            self.waited += delay
            self._sleep(delay)
