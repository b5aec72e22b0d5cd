"""WorkerService: describe and drain, for operators inside the cluster."""

from __future__ import annotations

from typing import Any, Protocol

from services.worker.convert import worker_info_to_proto
from services.worker.model import WorkerStatus
from switchyard.v1 import worker_pb2, worker_pb2_grpc


class WorkerControl(Protocol):
    def status(self) -> WorkerStatus: ...

    def handler_names(self) -> tuple[str, ...]: ...

    async def drain(self) -> None: ...


class WorkerServicer(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(self, worker: WorkerControl) -> None:
        self._worker = worker

    async def DescribeWorker(
        self, request: worker_pb2.DescribeWorkerRequest, context: Any
    ) -> worker_pb2.DescribeWorkerResponse:
        status = self._worker.status()
        return worker_pb2.DescribeWorkerResponse(
            worker=worker_info_to_proto(status),
            running_task_ids=list(status.running_task_ids),
            handlers=list(self._worker.handler_names()),
        )

    async def DrainWorker(
        self, request: worker_pb2.DrainWorkerRequest, context: Any
    ) -> worker_pb2.DrainWorkerResponse:
        await self._worker.drain()
        return worker_pb2.DrainWorkerResponse(worker=worker_info_to_proto(self._worker.status()))
