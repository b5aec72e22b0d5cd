"""Profile arithmetic, pure (no I/O): Welford moments, EWMA, a mergeable quantile sketch,
and the batch-size bucket.

The sketch follows DDSketch (Masson, Rim and Lee, VLDB 2019): a positive value x falls in
bucket ceil(log_gamma(x)) with gamma = (1 + a) / (1 - a), and a bucket answers with
2 gamma^i / (gamma + 1), which lies within relative error `a` of every value in it. So any
quantile it reports is within `a` (1% by default) of the true sample quantile, two
sketches merge by adding bucket counts, and the size grows with log(max / min), not with
the number of samples.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

RELATIVE_ACCURACY = 0.01
MAX_BUCKETS = 2048
# Values at or below this (seconds) count as zero: below any timer's resolution.
ZERO_THRESHOLD = 1e-9
_HEADER = struct.Struct("<BdQI")
_BUCKET = struct.Struct("<iQ")
_VERSION = 1


def batch_bucket(batch_size: int) -> int:
    """The next power of two at or above batch_size (1 for 0 or 1: "unbatched")."""
    if batch_size <= 1:
        return 1
    return 1 << (batch_size - 1).bit_length()


def ewma(previous: float | None, value: float, alpha: float) -> float:
    """Exponentially weighted moving average; the first sample starts it."""
    if previous is None:
        return value
    return alpha * value + (1 - alpha) * previous


@dataclass(frozen=True)
class Welford:
    """Count, mean and sum of squared deviations, updated one value at a time (Welford 1962)
    and merged pairwise (Chan et al. 1979) without loss of precision."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> Welford:
        count = self.count + 1
        delta = value - self.mean
        mean = self.mean + delta / count
        return Welford(count, mean, self.m2 + delta * (value - mean))

    def merge(self, other: Welford) -> Welford:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / count
        m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / count
        return Welford(count, mean, m2)

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 in the denominator); 0 below two values."""
        return self.m2 / (self.count - 1) if self.count > 1 else 0.0


class QuantileSketch:
    """A DDSketch: quantiles within `relative_accuracy` of the true sample quantile.

    When more than `max_buckets` buckets are in use the lowest ones are folded together,
    so only the smallest values lose accuracy (p50/p95/p99 of durations keep theirs).
    """

    def __init__(self, relative_accuracy: float = RELATIVE_ACCURACY, max_buckets: int = MAX_BUCKETS) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must be in (0, 1)")
        self.relative_accuracy = relative_accuracy
        self.max_buckets = max_buckets
        self.gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._log_gamma = math.log(self.gamma)
        self.buckets: dict[int, int] = {}
        self.zero_count = 0

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.buckets.values())

    def add(self, value: float, weight: int = 1) -> None:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"cannot add {value!r}: only finite, non-negative values")
        if value <= ZERO_THRESHOLD:
            self.zero_count += weight
            return
        index = math.ceil(math.log(value) / self._log_gamma)
        self.buckets[index] = self.buckets.get(index, 0) + weight
        if len(self.buckets) > self.max_buckets:
            self._collapse()

    def add_many(self, values: Iterable[float]) -> None:
        """`add(v)` for each value in turn (the same buckets and collapses), without the
        per-call overhead: the ingest path folds whole batches."""
        buckets, log_gamma = self.buckets, self._log_gamma
        for value in values:
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"cannot add {value!r}: only finite, non-negative values")
            if value <= ZERO_THRESHOLD:
                self.zero_count += 1
                continue
            index = math.ceil(math.log(value) / log_gamma)
            n = buckets.get(index)
            if n is not None:
                buckets[index] = n + 1
                continue
            buckets[index] = 1
            if len(buckets) > self.max_buckets:
                self._collapse()

    def merge(self, other: QuantileSketch) -> None:
        if not math.isclose(other.relative_accuracy, self.relative_accuracy):
            raise ValueError("cannot merge sketches of different relative accuracy")
        self.zero_count += other.zero_count
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        if len(self.buckets) > self.max_buckets:
            self._collapse()

    def quantile(self, q: float) -> float:
        """The value at rank q * (count - 1) of the sorted samples (0.0 when empty)."""
        if not 0 <= q <= 1:
            raise ValueError("q must be in [0, 1]")
        total = self.count
        if total == 0:
            return 0.0
        rank = q * (total - 1)
        seen = self.zero_count
        if seen > rank:
            return 0.0
        indices = sorted(self.buckets)
        for index in indices:
            seen += self.buckets[index]
            if seen > rank:
                return self._value(index)
        return self._value(indices[-1])

    def quantiles_of(self, qs: tuple[float, ...]) -> tuple[float, ...]:
        """`quantile(q)` for each q of an ascending tuple, in one pass over the buckets."""
        total = self.count
        if total == 0:
            return tuple(0.0 for _ in qs)
        out: list[float] = []
        indices = sorted(self.buckets)
        seen, k = self.zero_count, 0
        for q in qs:
            rank = q * (total - 1)
            if seen > rank and k == 0 and self.zero_count > rank:
                out.append(0.0)
                continue
            while k < len(indices) and seen <= rank:
                seen += self.buckets[indices[k]]
                k += 1
            out.append(self._value(indices[max(k - 1, 0)]))
        return tuple(out)

    def copy(self) -> QuantileSketch:
        clone = QuantileSketch(self.relative_accuracy, self.max_buckets)
        clone.buckets = dict(self.buckets)
        clone.zero_count = self.zero_count
        return clone

    def to_bytes(self) -> bytes:
        parts = [_HEADER.pack(_VERSION, self.relative_accuracy, self.zero_count, len(self.buckets))]
        parts.extend(_BUCKET.pack(i, n) for i, n in sorted(self.buckets.items()))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, max_buckets: int = MAX_BUCKETS) -> QuantileSketch:
        version, accuracy, zero_count, n = _HEADER.unpack_from(data, 0)
        if version != _VERSION:
            raise ValueError(f"unknown sketch encoding version {version}")
        sketch = cls(accuracy, max_buckets)
        sketch.zero_count = zero_count
        for k in range(n):
            index, count = _BUCKET.unpack_from(data, _HEADER.size + k * _BUCKET.size)
            sketch.buckets[index] = count
        return sketch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return (
            self.relative_accuracy == other.relative_accuracy
            and self.zero_count == other.zero_count
            and self.buckets == other.buckets
        )

    __hash__ = None  # type: ignore[assignment]

    def _value(self, index: int) -> float:
        return 2 * self.gamma**index / (self.gamma + 1)

    def _collapse(self) -> None:
        indices = sorted(self.buckets)
        extra = indices[: len(indices) - self.max_buckets + 1]
        floor = indices[len(extra)]
        self.buckets[floor] += sum(self.buckets.pop(i) for i in extra)


@dataclass
class ProfileStats:
    """The running figures of one profile; `observe` folds in one successful sample."""

    moments: Welford = field(default_factory=Welford)
    ewma_seconds: float | None = None
    items_per_second: float | None = None
    sketch: QuantileSketch = field(default_factory=QuantileSketch)

    def observe(self, seconds: float, throughput: float, alpha: float) -> None:
        self.moments = self.moments.add(seconds)
        self.ewma_seconds = ewma(self.ewma_seconds, seconds, alpha)
        if throughput > 0:
            self.items_per_second = ewma(self.items_per_second, throughput, alpha)
        self.sketch.add(seconds)

    def observe_many(self, samples: Iterable[tuple[float, float]], alpha: float) -> None:
        """`observe(seconds, throughput, alpha)` for each sample in turn, with the same
        arithmetic in the same order, so the figures are bit-for-bit those of one-at-a-time
        folding (EWMA depends on the order)."""
        moments = self.moments
        count, mean, m2 = moments.count, moments.mean, moments.m2
        ewma_s, items = self.ewma_seconds, self.items_per_second
        seconds_seen: list[float] = []
        for seconds, throughput in samples:
            count += 1
            delta = seconds - mean
            mean = mean + delta / count
            m2 = m2 + delta * (seconds - mean)
            ewma_s = seconds if ewma_s is None else alpha * seconds + (1 - alpha) * ewma_s
            if throughput > 0:
                items = throughput if items is None else alpha * throughput + (1 - alpha) * items
            seconds_seen.append(seconds)
        self.moments = Welford(count, mean, m2)
        self.ewma_seconds, self.items_per_second = ewma_s, items
        self.sketch.add_many(seconds_seen)

    def quantiles(self) -> tuple[float, float, float]:
        p50, p95, p99 = self.sketch.quantiles_of((0.5, 0.95, 0.99))
        return p50, p95, p99

    def copy(self) -> ProfileStats:
        return ProfileStats(self.moments, self.ewma_seconds, self.items_per_second, self.sketch.copy())
