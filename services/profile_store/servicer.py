"""ProfileStoreService: validate → convert → store → convert, nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from common.errors import NotFound, QuotaViolation, ResourceExhausted
from services.profile_store import convert, intake, validate
from services.profile_store.feed import ChangeFeed
from services.profile_store.group_commit import DEFAULT_MAX_METRICS, GroupCommit
from services.profile_store.model import Metric
from services.profile_store.store import ProfileStore
from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_PAGE_SIZE = 100
# Requests of one IngestMetrics stream checked and queued ahead of their acks.
READ_AHEAD = 16


# A request as accepted: its metrics, the verdict on each, and the commit of those stored.
_Accepted = tuple[
    profile_store_pb2.IngestMetricsRequest, list[intake.Checked], "asyncio.Future[Sequence[bool]]"
]


def _forget(item: _Accepted | Exception | None) -> None:
    if isinstance(item, tuple):
        committed = item[2]
        if not committed.done():
            committed.cancel()
        elif not committed.cancelled():
            committed.exception()  # retrieved: a failed commit is not reported twice


class ProfileStoreServicer(profile_store_pb2_grpc.ProfileStoreServiceServicer):
    def __init__(
        self,
        store: ProfileStore,
        feed: ChangeFeed,
        *,
        internal_token: str,
        batch_max: int,
        commit_max: int = DEFAULT_MAX_METRICS,
    ) -> None:
        self._store = store
        self._feed = feed
        self.commits = GroupCommit(store, feed, max_metrics=commit_max)
        self._secret = internal_token
        self._batch_max = batch_max

    async def IngestMetrics(
        self, request_iterator: AsyncIterator[profile_store_pb2.IngestMetricsRequest], context: Context
    ) -> AsyncIterator[profile_store_pb2.IngestMetricsResponse]:
        # Requests are read, checked and handed to the group commit ahead of their acks (up to
        # READ_AHEAD), so that a pipelined stream keeps the database busy; each response goes
        # out in request order once its transaction has committed.
        accepted: asyncio.Queue[_Accepted | Exception | None] = asyncio.Queue(READ_AHEAD)
        reader = asyncio.create_task(self._read(request_iterator, accepted))
        try:
            while (item := await accepted.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield await self._respond(*item)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            while not accepted.empty():  # requests never answered: their commits go unheard
                _forget(accepted.get_nowait())

    async def _read(
        self,
        requests: AsyncIterator[profile_store_pb2.IngestMetricsRequest],
        out: asyncio.Queue[_Accepted | Exception | None],
    ) -> None:
        try:
            async for request in requests:
                await out.put(self._accept(request))
        except Exception as exc:  # the stream broke: the responding side raises it
            await out.put(exc)
        await out.put(None)

    def _accept(self, request: profile_store_pb2.IngestMetricsRequest) -> _Accepted:
        if len(request.metrics) > self._batch_max:
            too_big = ResourceExhausted(
                f"at most {self._batch_max} metrics per request",
                [QuotaViolation("metrics", f"{len(request.metrics)} > {self._batch_max}")],
                reason="INGEST_BATCH_TOO_LARGE",
            )
            status = convert.error_status(too_big)
            return request, [status] * len(request.metrics), self.commits.submit([])
        checked = intake.check_metrics(request.metrics, self._secret)
        return request, checked, self.commits.submit([c for c in checked if isinstance(c, Metric)])

    async def _respond(
        self,
        request: profile_store_pb2.IngestMetricsRequest,
        checked: list[intake.Checked],
        committed: asyncio.Future[Sequence[bool]],
    ) -> profile_store_pb2.IngestMetricsResponse:
        return convert.ingest_response(request.metrics, checked, await committed)

    async def close(self) -> None:
        """Let the ingest transactions already queued finish."""
        await self.commits.close()

    async def GetProfile(
        self, request: profile_store_pb2.GetProfileRequest, context: Context
    ) -> profile_store_pb2.GetProfileResponse:
        validate.check_get_profile(request)
        key = convert.profile_key_from_proto(request.key)
        profile = await self._store.get_profile(key)
        if profile is None:
            raise NotFound("profile", key.id.replace("\x1f", "/"))
        return profile_store_pb2.GetProfileResponse(profile=convert.profile_to_proto(profile))

    async def ListProfiles(
        self, request: profile_store_pb2.ListProfilesRequest, context: Context
    ) -> profile_store_pb2.ListProfilesResponse:
        validate.check_list_profiles(request)
        after = validate.decode_page_token(request.page_token) if request.page_token else ""
        page = await self._store.list_profiles(
            convert.profile_filter_from_proto(request),
            after=after,
            limit=request.page_size or DEFAULT_PAGE_SIZE,
        )
        return profile_store_pb2.ListProfilesResponse(
            profiles=[convert.profile_to_proto(p) for p in page.profiles],
            next_page_token=validate.encode_page_token(page.next_after),
        )

    async def ListTenantScores(
        self, request: profile_store_pb2.ListTenantScoresRequest, context: Context
    ) -> profile_store_pb2.ListTenantScoresResponse:
        scores = await self._store.tenant_scores()
        return profile_store_pb2.ListTenantScoresResponse(
            scores=[convert.tenant_score_to_proto(s) for s in scores]
        )

    async def WatchProfiles(
        self, request: profile_store_pb2.WatchProfilesRequest, context: Context
    ) -> AsyncIterator[profile_store_pb2.WatchProfilesResponse]:
        # Subscribe before the snapshot so that nothing committed in between is missed.
        with self._feed.profiles.subscribe() as sub:
            snapshot = await self._store.all_profiles()
            yield profile_store_pb2.WatchProfilesResponse(
                profiles=[convert.profile_to_proto(p) for p in snapshot], snapshot=True
            )
            while (changed := await sub.next_batch()) is not None:
                yield profile_store_pb2.WatchProfilesResponse(
                    profiles=[convert.profile_to_proto(p) for p in changed]
                )

    async def WatchTenantScores(
        self, request: profile_store_pb2.WatchTenantScoresRequest, context: Context
    ) -> AsyncIterator[profile_store_pb2.WatchTenantScoresResponse]:
        with self._feed.scores.subscribe() as sub:
            snapshot = await self._store.tenant_scores()
            yield profile_store_pb2.WatchTenantScoresResponse(
                scores=[convert.tenant_score_to_proto(s) for s in snapshot], snapshot=True
            )
            while (changed := await sub.next_batch()) is not None:
                yield profile_store_pb2.WatchTenantScoresResponse(
                    scores=[convert.tenant_score_to_proto(s) for s in changed]
                )
