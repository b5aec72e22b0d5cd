"""The one error type of the Switchyard client.

Every failed call of `switchyard.Client` raises `SwitchyardError`, never a raw
`grpc.RpcError`. It carries the gRPC status code name and message plus the standard
`google.rpc.Status` details the services attach in the `grpc-status-details-bin` trailer:

    SwitchyardError
        code              "INVALID_ARGUMENT", "NOT_FOUND", "UNAVAILABLE", ...
        message           safe to show to a user
        reason, domain    from ErrorInfo (a stable UPPER_SNAKE reason)
        metadata          ErrorInfo metadata
        field_violations  from BadRequest: which request fields are wrong and why
        quota_violations  from QuotaFailure
        retry_delay       seconds, from RetryInfo
        resource          (type, name), from ResourceInfo
        request_id        the server's request id, for finding its log lines
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

# Codes worth retrying after a pause; the server says how long in RetryInfo when it can.
RETRYABLE_CODES = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "DEADLINE_EXCEEDED"})


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request (`tasks[2].batch_size`) and what is wrong with it."""

    field: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    """One exceeded quota (the subject, e.g. a tenant) and a description."""

    subject: str
    description: str


class SwitchyardError(Exception):
    """A call to Switchyard failed; see the module docstring for the fields."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: dict[str, str] | None = None,
        field_violations: Iterable[FieldViolation] = (),
        quota_violations: Iterable[QuotaViolation] = (),
        retry_delay: float | None = None,
        resource: tuple[str, str] | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations)
        self.quota_violations = list(quota_violations)
        self.retry_delay = retry_delay
        self.resource = resource
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed if tried again later."""
        return self.code in RETRYABLE_CODES

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        if self.reason and self.reason != self.code:
            text += f" [{self.reason}]"
        return text

    def __repr__(self) -> str:
        return f"SwitchyardError(code={self.code!r}, message={self.message!r}, reason={self.reason!r})"

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> SwitchyardError:
        """Decode a failed call (`grpc.aio.AioRpcError` or a sync `grpc.Call` error)."""
        code = _code_name(error)
        message = _details(error)
        status = _rich_status(error)
        fields: dict[str, Any] = {"request_id": _metadata_value(error, "x-request-id")}
        if status is not None:
            message = status.message or message
            for holder in status.details:
                _apply_detail(holder, fields)
        return cls(code, message, **fields)


def _code_name(error: grpc.RpcError) -> str:
    code = getattr(error, "code", None)
    value = code() if callable(code) else None
    return value.name if isinstance(value, grpc.StatusCode) else "UNKNOWN"


def _details(error: grpc.RpcError) -> str:
    details = getattr(error, "details", None)
    text = details() if callable(details) else None
    return text if isinstance(text, str) and text else str(error)


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
    except (ValueError, TypeError, AttributeError):
        # Code or message inconsistent with the trailer: trust the plain status.
        return None
    return status


def _metadata_value(error: grpc.RpcError, key: str) -> str:
    for getter in ("trailing_metadata", "initial_metadata"):
        method = getattr(error, getter, None)
        pairs = method() if callable(method) else None
        for name, value in pairs or ():
            if name == key and isinstance(value, str):
                return value
    return ""


def _apply_detail(holder: any_pb2.Any, fields: dict[str, Any]) -> None:
    """Unpack one google.rpc detail into the constructor keywords of SwitchyardError."""
    if holder.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
        info = error_details_pb2.ErrorInfo()
        holder.Unpack(info)
        fields.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        if info.metadata.get("request_id"):
            fields["request_id"] = info.metadata["request_id"]
    elif holder.Is(error_details_pb2.BadRequest.DESCRIPTOR):
        bad = error_details_pb2.BadRequest()
        holder.Unpack(bad)
        fields["field_violations"] = [FieldViolation(v.field, v.description) for v in bad.field_violations]
    elif holder.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
        quota = error_details_pb2.QuotaFailure()
        holder.Unpack(quota)
        fields["quota_violations"] = [QuotaViolation(v.subject, v.description) for v in quota.violations]
    elif holder.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
        retry = error_details_pb2.RetryInfo()
        holder.Unpack(retry)
        fields["retry_delay"] = retry.retry_delay.ToTimedelta().total_seconds()
    elif holder.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
        resource = error_details_pb2.ResourceInfo()
        holder.Unpack(resource)
        fields["resource"] = (resource.resource_type, resource.resource_name)
