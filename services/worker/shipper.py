"""Result metrics to the profile store over one long-lived IngestMetrics stream.

Metrics wait in a bounded buffer until acknowledged: stored (or duplicate) ones are
dropped from it, rejected ones are logged and dropped, and whatever was unacknowledged
when the stream broke is resent on the next one. When the buffer is full the oldest
metric is dropped and counted.

A metric waits serialized, and a request is written as the concatenation of its metrics
(an `IngestMetricsRequest` on the wire is its `metrics` fields one after another): no
metric is copied into a request message, which costs several times its serialization.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import grpc
from prometheus_client import Counter

from common.channels import authed_channel, bearer
from switchyard.v1 import profile_store_pb2, types_pb2

log = logging.getLogger(__name__)

METRICS_DROPPED = Counter(
    "switchyard_worker_metrics_dropped_total", "Result metrics dropped because the buffer was full"
)
METRICS_REJECTED = Counter(
    "switchyard_worker_metrics_rejected_total", "Result metrics the profile store rejected"
)
BACKOFF_S = (0.2, 5.0)
MAX_BATCH = 500
Key = tuple[str, int]
_Call = grpc.aio.StreamStreamCall[bytes, profile_store_pb2.IngestMetricsResponse]
_METHOD = "/switchyard.v1.ProfileStoreService/IngestMetrics"
_METRICS_TAG = bytes(
    [profile_store_pb2.IngestMetricsRequest.DESCRIPTOR.fields_by_name["metrics"].number << 3 | 2]
)


def encode_request(metrics: list[bytes]) -> bytes:
    """The serialized `IngestMetricsRequest` of these serialized metrics."""
    parts: list[bytes] = []
    for item in metrics:
        parts += (_METRICS_TAG, _varint(len(item)), item)
    return b"".join(parts)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class MetricsShipper:
    def __init__(self, *, address: str, token: str, capacity: int, linger_s: float = 0.05) -> None:
        self._address, self._token, self._capacity = address, token, capacity
        # Wait this long after the first unsent metric so many travel (and are stored) together.
        self._linger_s = linger_s
        self._buffer: OrderedDict[Key, bytes] = OrderedDict()
        self._unsent: OrderedDict[Key, None] = OrderedDict()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.stored = 0
        self.rejected = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Metrics not yet acknowledged."""
        return len(self._buffer)

    def add(self, metrics: types_pb2.ResultMetrics) -> None:
        key = (metrics.task_id, metrics.attempt)
        if key not in self._buffer and len(self._buffer) >= self._capacity:
            self._drop_oldest()
        self._buffer[key] = metrics.SerializeToString()
        self._buffer.move_to_end(key)
        self._unsent[key] = None
        self._idle.clear()
        self._wake.set()

    def _drop_oldest(self) -> None:
        key, _ = self._buffer.popitem(last=False)
        self._unsent.pop(key, None)
        self.dropped += 1
        METRICS_DROPPED.inc()
        if self.dropped == 1 or self.dropped % 100 == 0:
            log.warning(
                "metrics buffer full: dropped the oldest metric",
                extra={"task_id": key[0], "dropped_total": self.dropped, "capacity": self._capacity},
            )

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="metrics-shipper")

    async def stop(self, flush_s: float = 2.0) -> None:
        """Give unacknowledged metrics a moment to be stored, then stop."""
        if self._buffer and self.connected:
            try:
                await asyncio.wait_for(self._idle.wait(), flush_s)
            except TimeoutError:
                log.warning("stopping with unacknowledged metrics", extra={"pending": self.pending})
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        delay = BACKOFF_S[0]
        while True:
            while not self._buffer:  # open a stream only when there is something to send
                self._wake.clear()
                await self._wake.wait()
            acked = False
            try:
                acked = await self._session()
            except grpc.aio.AioRpcError as exc:
                log.info(
                    "profile store stream failed", extra={"address": self._address, "code": str(exc.code())}
                )
            except Exception:
                log.exception("metrics shipper error")
            self.connected = False
            if acked:
                delay = BACKOFF_S[0]
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_S[1])

    async def _session(self) -> bool:
        """One stream: resend everything unacknowledged, then keep sending and reading acks."""
        channel = authed_channel(self._address, None)
        # The stub's method, but writing requests already serialized (see encode_request).
        ingest: grpc.aio.StreamStreamMultiCallable[bytes, profile_store_pb2.IngestMetricsResponse]
        ingest = channel.stream_stream(
            _METHOD,
            request_serializer=None,
            response_deserializer=profile_store_pb2.IngestMetricsResponse.FromString,
        )
        call: _Call = ingest(metadata=bearer(self._token))
        self._unsent = OrderedDict.fromkeys(self._buffer)
        self._wake.set()
        writer = asyncio.create_task(self._write_loop(call))
        acked = False
        try:
            while True:
                response = await call.read()
                if not isinstance(response, profile_store_pb2.IngestMetricsResponse):
                    return acked
                self.connected = acked = True
                self._acknowledge(response)
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            call.cancel()
            await channel.close()

    async def _write_loop(self, call: _Call) -> None:
        while True:
            await self._wake.wait()
            if self._linger_s > 0 and len(self._unsent) < MAX_BATCH:
                await asyncio.sleep(self._linger_s)
            self._wake.clear()
            while self._unsent:
                keys = [self._unsent.popitem(last=False)[0] for _ in range(min(MAX_BATCH, len(self._unsent)))]
                batch = [self._buffer[k] for k in keys if k in self._buffer]
                if batch:
                    await call.write(encode_request(batch))

    def _acknowledge(self, response: profile_store_pb2.IngestMetricsResponse) -> None:
        for ack in response.acks:
            if self._buffer.pop((ack.task_id, ack.attempt), None) is None:
                continue
            if ack.status.code == 0:
                self.stored += 1
            else:
                self.rejected += 1
                METRICS_REJECTED.inc()
                log.warning(
                    "profile store rejected a metric",
                    extra={"task_id": ack.task_id, "attempt": ack.attempt, "error": ack.status.message},
                )
        if not self._buffer:
            self._idle.set()
