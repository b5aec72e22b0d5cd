"""ClassifierService: validate → classify → one EnqueueTasks; reads forwarded on the caller's tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc

from common.auth import Principal, principal_var, require_internal
from common.errors import Unauthenticated, Unavailable, Violations
from common.logs import request_id_var
from services.classifier.convert import classification_to_proto, tenant_changes_to_proto
from services.classifier.follow import DEFAULT_POLL_S, follow_job
from services.classifier.forward import SchedulerRelay, scheduler_errors
from services.classifier.intake import Intake
from services.classifier.tenant_watch import LoadTenants, watch_tenants
from services.classifier.validation import check_ids, check_required
from switchyard.v1 import classifier_pb2, scheduler_pb2, types_pb2

if TYPE_CHECKING:
    from switchyard.v1.scheduler_pb2_grpc import SchedulerServiceAsyncStub

Context = grpc.aio.ServicerContext[Any, Any]
# Internal callers (operators, services) may act for a tenant with this metadata.
ACT_AS_TENANT, ACT_AS_USER = "x-switchyard-tenant", "x-switchyard-user"


class ClassifierServicer:
    """Registered by `add_classifier_servicer`: GetTasks and WatchTasks answer with the
    scheduler's bytes (see `SchedulerRelay`)."""

    def __init__(
        self,
        intake: Intake,
        scheduler: SchedulerServiceAsyncStub,
        *,
        relay: SchedulerRelay,
        timeout_s: float = 30.0,
        anonymous: Principal | None = None,
        job_poll_s: float = DEFAULT_POLL_S,
        tenants: LoadTenants | None = None,
        tenant_poll_s: float = 2.0,
        scheduler_metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.intake = intake
        self.scheduler = scheduler
        self.relay = relay
        self.timeout_s = timeout_s
        self.anonymous = anonymous
        self.job_poll_s = job_poll_s
        self.tenants = tenants
        self.tenant_poll_s = tenant_poll_s
        # Sent on every scheduler call (the internal bearer token): per call rather than by
        # a channel interceptor, which costs each call a task and a wrapper of its own.
        self.scheduler_metadata = scheduler_metadata
        self.id_limit = intake.ctx.limits.max_tasks_per_submit

    async def SubmitTasks(
        self, request: classifier_pb2.SubmitTasksRequest, context: Context
    ) -> classifier_pb2.SubmitTasksResponse:
        plan = self.intake.plan(request, self._caller(context))
        async with scheduler_errors(context):
            stored = await self.scheduler.EnqueueTasks(plan.request, **self._call())
        return classifier_pb2.SubmitTasksResponse(job_id=plan.job_id, tasks=stored.tasks)

    async def ClassifyTasks(
        self, request: classifier_pb2.ClassifyTasksRequest, context: Context
    ) -> classifier_pb2.ClassifyTasksResponse:
        self._caller(context)
        results = self.intake.classify(request.tasks)
        return classifier_pb2.ClassifyTasksResponse(
            classifications=[classification_to_proto(r) for r in results]
        )

    async def GetTasks(self, request: classifier_pb2.GetTasksRequest, context: Context) -> bytes:
        tenant = self._caller(context).tenant
        self._check(lambda v: check_ids("task_ids", request.task_ids, v, limit=self.id_limit))
        forwarded = scheduler_pb2.SchedulerServiceGetTasksRequest(tenant=tenant, task_ids=request.task_ids)
        async with scheduler_errors(context):
            reply: bytes = await self.relay.get_tasks(forwarded, **self._call())
        return reply  # a GetTasksResponse, relayed unparsed

    async def ListTasks(
        self, request: classifier_pb2.ListTasksRequest, context: Context
    ) -> classifier_pb2.ListTasksResponse:
        tenant = self._caller(context).tenant
        self._check(lambda v: _check_page(request, v))
        forwarded = scheduler_pb2.SchedulerServiceListTasksRequest(
            tenant=tenant,
            job_id=request.job_id,
            states=request.states,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        async with scheduler_errors(context):
            reply = await self.scheduler.ListTasks(forwarded, **self._call())
        return classifier_pb2.ListTasksResponse(tasks=reply.tasks, next_page_token=reply.next_page_token)

    async def WatchTasks(
        self, request: classifier_pb2.WatchTasksRequest, context: Context
    ) -> AsyncIterator[bytes]:
        tenant = self._caller(context).tenant
        self._check(lambda v: check_ids("task_ids", request.task_ids, v, limit=self.id_limit))
        forwarded = scheduler_pb2.SchedulerServiceWatchTasksRequest(tenant=tenant, task_ids=request.task_ids)
        call = self.relay.watch_tasks(forwarded, metadata=self._metadata())
        try:
            async with scheduler_errors(context):
                async for update in call:
                    yield update  # a WatchTasksResponse, relayed unparsed
        finally:
            call.cancel()

    async def GetJob(
        self, request: classifier_pb2.GetJobRequest, context: Context
    ) -> classifier_pb2.GetJobResponse:
        tenant = self._caller(context).tenant
        self._check(lambda v: check_required("job_id", request.job_id, v))
        async with scheduler_errors(context):
            job = await self._get_job(tenant, request.job_id)
        return classifier_pb2.GetJobResponse(job=job)

    async def WatchJob(
        self, request: classifier_pb2.WatchJobRequest, context: Context
    ) -> AsyncIterator[classifier_pb2.WatchJobResponse]:
        tenant, job_id = self._caller(context).tenant, request.job_id
        self._check(lambda v: check_required("job_id", job_id, v))
        watch = self.scheduler.WatchTasks(
            scheduler_pb2.SchedulerServiceWatchTasksRequest(tenant=tenant, job_id=job_id),
            metadata=self._metadata(),
        )
        try:
            async with scheduler_errors(context):
                async for job in follow_job(
                    watch, lambda: self._get_job(tenant, job_id), poll_s=self.job_poll_s
                ):
                    yield classifier_pb2.WatchJobResponse(job=job)
        finally:
            watch.cancel()

    async def CancelTasks(
        self, request: classifier_pb2.CancelTasksRequest, context: Context
    ) -> classifier_pb2.CancelTasksResponse:
        tenant = self._caller(context).tenant
        self._check(lambda v: _check_cancel(request, v, self.id_limit))
        forwarded = scheduler_pb2.SchedulerServiceCancelTasksRequest(
            tenant=tenant, task_ids=request.task_ids, job_id=request.job_id
        )
        async with scheduler_errors(context):
            reply = await self.scheduler.CancelTasks(forwarded, **self._call())
        return classifier_pb2.CancelTasksResponse(tasks=reply.tasks)

    async def ExplainTask(
        self, request: classifier_pb2.ExplainTaskRequest, context: Context
    ) -> classifier_pb2.ExplainTaskResponse:
        tenant = self._caller(context).tenant
        self._check(lambda v: check_required("task_id", request.task_id, v))
        forwarded = scheduler_pb2.SchedulerServiceExplainTaskRequest(tenant=tenant, task_id=request.task_id)
        async with scheduler_errors(context):
            reply = await self.scheduler.ExplainTask(forwarded, **self._call())
        return classifier_pb2.ExplainTaskResponse(explanation=reply.explanation)

    async def WatchTenants(
        self, request: classifier_pb2.WatchTenantsRequest, context: Context
    ) -> AsyncIterator[classifier_pb2.WatchTenantsResponse]:
        if self.anonymous is None:
            require_internal()  # with authentication off (allow_anonymous) every caller may
        if self.tenants is None:
            raise Unavailable("this classifier has no tenant registry", reason="REGISTRY_UNAVAILABLE")
        async for changes in watch_tenants(self.tenants, poll_s=self.tenant_poll_s):
            yield tenant_changes_to_proto(changes)

    # -- helpers ---------------------------------------------------------------------------

    def _caller(self, context: Context) -> Principal:
        """The principal the request acts for; internal callers may name a tenant."""
        principal = principal_var.get()
        if principal is None:
            if self.anonymous is None:
                raise Unauthenticated("missing bearer token")
            return self.anonymous
        if principal.internal:
            metadata = dict((k, v) for k, v in context.invocation_metadata() or () if isinstance(v, str))
            if metadata.get(ACT_AS_TENANT):
                user = metadata.get(ACT_AS_USER) or principal.user
                return Principal(tenant=metadata[ACT_AS_TENANT], user=user, internal=True)
        return principal

    @staticmethod
    def _check(validator: Callable[[Violations], None]) -> None:
        v = Violations()
        validator(v)
        v.raise_if_any()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        rid = request_id_var.get()
        return (("x-request-id", rid), *self.scheduler_metadata) if rid else self.scheduler_metadata

    def _call(self) -> dict[str, Any]:
        return {"timeout": self.timeout_s, "metadata": self._metadata()}

    async def _get_job(self, tenant: str, job_id: str) -> types_pb2.Job:
        reply = await self.scheduler.GetJob(
            scheduler_pb2.SchedulerServiceGetJobRequest(tenant=tenant, job_id=job_id), **self._call()
        )
        return reply.job


def _check_page(request: classifier_pb2.ListTasksRequest, v: Violations) -> None:
    if request.page_size < 0:
        v.add("page_size", "must not be negative")
    for i, state in enumerate(request.states):
        if state not in types_pb2.TaskState.values():
            v.add(f"states[{i}]", f"unknown task state {state}")


def _check_cancel(request: classifier_pb2.CancelTasksRequest, v: Violations, limit: int) -> None:
    if not request.task_ids and not request.job_id:
        v.add("task_ids", "give task ids or a job_id")
    check_ids("task_ids", request.task_ids, v, limit=limit, required=False)
