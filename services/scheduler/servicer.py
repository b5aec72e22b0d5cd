"""SchedulerService: thin RPC handlers over the engine and the queries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from common.auth import require_internal as _require_internal
from common.errors import Unavailable
from services.scheduler.convert import refresh_proto, task_to_proto, worker_to_proto
from services.scheduler.engine import Engine
from services.scheduler.link import serve_worker
from services.scheduler.model import TaskState
from services.scheduler.queries import Queries
from services.scheduler.validate import validate_enqueue, validate_ids
from switchyard.v1 import scheduler_pb2 as pb
from switchyard.v1 import scheduler_pb2_grpc

Ctx = Any


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queries = Queries(engine)

    def _ready(self) -> None:
        """Service callers only, and only on the active scheduler (a standby says UNAVAILABLE)."""
        _require_internal()
        if not self.engine.active:
            raise Unavailable("this scheduler is a standby; another one is active", reason="STANDBY")

    async def EnqueueTasks(self, request: pb.EnqueueTasksRequest, context: Ctx) -> pb.EnqueueTasksResponse:
        self._ready()
        validate_enqueue(request)
        incoming = list(request.tasks)
        stored = await self.engine.enqueue(incoming)
        # A new task's answer is its request brought up to date; an idempotent hit (another
        # task's record) is built whole.
        return pb.EnqueueTasksResponse(
            tasks=[
                refresh_proto(t, r) if r.id == t.id else task_to_proto(r)
                for t, r in zip(incoming, stored, strict=True)
            ]
        )

    async def GetTasks(
        self, request: pb.SchedulerServiceGetTasksRequest, context: Ctx
    ) -> pb.SchedulerServiceGetTasksResponse:
        self._ready()
        validate_ids(request.tenant, request.task_ids, "task_ids")
        records = await self.queries.tasks(request.tenant, list(request.task_ids))
        return pb.SchedulerServiceGetTasksResponse(tasks=[task_to_proto(r) for r in records])

    async def ListTasks(
        self, request: pb.SchedulerServiceListTasksRequest, context: Ctx
    ) -> pb.SchedulerServiceListTasksResponse:
        self._ready()
        validate_ids(request.tenant, [], "task_ids", allow_empty=True)
        states = [TaskState(s) for s in request.states if s in TaskState._value2member_map_]
        records, token = await self.queries.list_tasks(
            request.tenant, request.job_id, states, request.page_size, request.page_token
        )
        return pb.SchedulerServiceListTasksResponse(
            tasks=[task_to_proto(r) for r in records], next_page_token=token
        )

    async def WatchTasks(
        self, request: pb.SchedulerServiceWatchTasksRequest, context: Ctx
    ) -> AsyncIterator[pb.SchedulerServiceWatchTasksResponse]:
        self._ready()
        validate_ids(request.tenant, request.task_ids, "task_ids", allow_empty=bool(request.job_id))
        async for batch in self.queries.watch(request.tenant, list(request.task_ids), request.job_id):
            yield pb.SchedulerServiceWatchTasksResponse(tasks=batch)

    async def GetJob(
        self, request: pb.SchedulerServiceGetJobRequest, context: Ctx
    ) -> pb.SchedulerServiceGetJobResponse:
        self._ready()
        validate_ids(request.tenant, [request.job_id], "job_id")
        return pb.SchedulerServiceGetJobResponse(job=await self.queries.job(request.tenant, request.job_id))

    async def CancelTasks(
        self, request: pb.SchedulerServiceCancelTasksRequest, context: Ctx
    ) -> pb.SchedulerServiceCancelTasksResponse:
        self._ready()
        validate_ids(request.tenant, request.task_ids, "task_ids", allow_empty=bool(request.job_id))
        ids = list(request.task_ids)
        if request.job_id:
            ids += [
                tid
                for tid in (await self.queries.job(request.tenant, request.job_id)).task_ids
                if tid not in ids
            ]
        records = self.engine.cancel(await self.queries.tasks(request.tenant, ids))
        await self.engine.committer.flush()
        return pb.SchedulerServiceCancelTasksResponse(tasks=[task_to_proto(r) for r in records])

    async def ExplainTask(
        self, request: pb.SchedulerServiceExplainTaskRequest, context: Ctx
    ) -> pb.SchedulerServiceExplainTaskResponse:
        self._ready()
        validate_ids(request.tenant, [request.task_id], "task_id")
        explanation = await self.queries.explain(request.tenant, request.task_id)
        return pb.SchedulerServiceExplainTaskResponse(explanation=explanation)

    async def ListWorkers(self, request: pb.ListWorkersRequest, context: Ctx) -> pb.ListWorkersResponse:
        self._ready()
        links = sorted(self.engine.workers.links.values(), key=lambda link: link.slots.worker_id)
        return pb.ListWorkersResponse(workers=[worker_to_proto(link.slots, link.info) for link in links])

    async def ConnectWorker(
        self, request_iterator: AsyncIterator[pb.ConnectWorkerRequest], context: Ctx
    ) -> AsyncIterator[pb.ConnectWorkerResponse]:
        self._ready()
        async for message in serve_worker(self.engine, request_iterator):
            yield message
