"""Progress of a long stage as lines a reader can act on: done of total, rate, time left."""

from __future__ import annotations

import time

from clustering.types import ProgressCallback


class ProgressMeter:
    """Texts done of a total, the rate since the start, and the time left, as progress lines."""

    def __init__(self, stage: str, total: int, progress: ProgressCallback) -> None:
        self.stage = stage
        self.total = total
        self.progress = progress
        self.done = 0
        self.start = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def advance(self, n: int) -> None:
        self.done += n
        rate = self.rate
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        self.progress(
            self.stage,
            self.done / self.total,
            f"embedded {self.done:,} of {self.total:,} texts, {rate:,.1f} texts/s, "
            f"{format_duration(left)} left",
        )


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
