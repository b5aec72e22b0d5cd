"""The one error catalogue of Switchyard.

Domain code raises these; one interceptor (`common.interceptor`) turns them into a gRPC
status code, a public message and `google.rpc.Status` details. Nothing here imports grpc.

    SwitchyardError                      (reason: UPPER_SNAKE, stable)
    ├── InvalidArgument    INVALID_ARGUMENT   + BadRequest field violations
    ├── Unauthenticated    UNAUTHENTICATED
    ├── PermissionDenied   PERMISSION_DENIED
    ├── NotFound           NOT_FOUND          + ResourceInfo
    ├── AlreadyExists      ALREADY_EXISTS
    ├── FailedPrecondition FAILED_PRECONDITION
    ├── ResourceExhausted  RESOURCE_EXHAUSTED + QuotaFailure violations
    └── Unavailable        UNAVAILABLE        + RetryInfo

Anything else that escapes a handler becomes INTERNAL with no internal detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    subject: str
    description: str


class SwitchyardError(Exception):
    """Base of every domain error; `reason` is stable, `message` is safe to show clients."""

    code_name = "UNKNOWN"
    default_reason = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})


class InvalidArgument(SwitchyardError):
    code_name = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation], message: str | None = None) -> None:
        fields = ", ".join(v.field for v in violations)
        super().__init__(message or f"invalid request: {fields}")
        self.violations = list(violations)


class Unauthenticated(SwitchyardError):
    code_name = "UNAUTHENTICATED"
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(SwitchyardError):
    code_name = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"


class NotFound(SwitchyardError):
    code_name = "NOT_FOUND"
    default_reason = "NOT_FOUND"

    def __init__(self, resource_type: str, name: str) -> None:
        super().__init__(f"{resource_type} {name!r} not found", reason=f"{resource_type.upper()}_NOT_FOUND")
        self.resource_type = resource_type
        self.resource_name = name


class AlreadyExists(SwitchyardError):
    code_name = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(SwitchyardError):
    code_name = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class ResourceExhausted(SwitchyardError):
    code_name = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self, message: str, violations: list[QuotaViolation] | None = None, *, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = list(violations or [])


class Unavailable(SwitchyardError):
    code_name = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_s = retry_after_s


@dataclass
class Violations:
    """Collects every problem of a request, then raises one InvalidArgument."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.items.append(FieldViolation(field_path, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


class ConfigError(Exception):
    """A configuration problem found at start-up; the service refuses to start."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems
