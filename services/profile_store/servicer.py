"""ProfileStoreService: validate → convert → store → convert, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.rpc import status_pb2

from common.errors import InvalidArgument, NotFound, PermissionDenied, QuotaViolation, ResourceExhausted
from common.tokens import verify_assignment
from services.profile_store import convert, validate
from services.profile_store.feed import ChangeFeed
from services.profile_store.model import Metric
from services.profile_store.store import ProfileStore
from switchyard.v1 import profile_store_pb2, profile_store_pb2_grpc, types_pb2

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_PAGE_SIZE = 100


class ProfileStoreServicer(profile_store_pb2_grpc.ProfileStoreServiceServicer):
    def __init__(self, store: ProfileStore, feed: ChangeFeed, *, internal_token: str, batch_max: int) -> None:
        self._store = store
        self._feed = feed
        self._secret = internal_token
        self._batch_max = batch_max

    async def IngestMetrics(
        self, request_iterator: AsyncIterator[profile_store_pb2.IngestMetricsRequest], context: Context
    ) -> AsyncIterator[profile_store_pb2.IngestMetricsResponse]:
        async for request in request_iterator:
            yield await self._ingest(request)

    async def _ingest(
        self, request: profile_store_pb2.IngestMetricsRequest
    ) -> profile_store_pb2.IngestMetricsResponse:
        if len(request.metrics) > self._batch_max:
            too_big = ResourceExhausted(
                f"at most {self._batch_max} metrics per request",
                [QuotaViolation("metrics", f"{len(request.metrics)} > {self._batch_max}")],
                reason="INGEST_BATCH_TOO_LARGE",
            )
            status = convert.error_status(too_big)
            return profile_store_pb2.IngestMetricsResponse(
                acks=[convert.ack(m, status) for m in request.metrics]
            )
        checked = [self._check(m) for m in request.metrics]
        result = await self._store.ingest([c for c in checked if isinstance(c, Metric)])
        self._feed.publish(result)
        dups = iter(result.duplicates)
        acks = [
            convert.ack(m, c) if isinstance(c, status_pb2.Status) else convert.ack(m, duplicate=next(dups))
            for m, c in zip(request.metrics, checked, strict=True)
        ]
        return profile_store_pb2.IngestMetricsResponse(acks=acks)

    def _check(self, m: types_pb2.ResultMetrics) -> Metric | status_pb2.Status:
        violations = validate.metric_violations(m)
        if violations:
            return convert.error_status(InvalidArgument(violations))
        if not verify_assignment(self._secret, m.assignment_token, m.task_id, m.attempt, m.worker_id):
            denied = PermissionDenied(
                "assignment_token: does not match (task_id, attempt, worker_id)",
                reason="BAD_ASSIGNMENT_TOKEN",
                metadata={"field": "assignment_token"},
            )
            return convert.error_status(denied)
        return convert.metric_from_proto(m)

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
