"""Who is calling: bearer tokens resolved to a principal, kept in a context variable.

Tenant tokens are random and high-entropy, so they are stored as SHA-256 digests. Service
calls (classifier → scheduler, worker → scheduler, worker → profile store) carry the
shared internal token instead.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from common.errors import PermissionDenied, Unauthenticated

INTERNAL_TENANT = "_internal"


@dataclass(frozen=True)
class Principal:
    tenant: str
    user: str
    internal: bool = False


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The authenticated caller of the current RPC; raises when there is none."""
    principal = principal_var.get()
    if principal is None:
        raise Unauthenticated("missing bearer token")
    return principal


def require_internal() -> Principal:
    principal = current_principal()
    if not principal.internal:
        raise PermissionDenied("this method is for Switchyard services only")
    return principal


def new_token(prefix: str = "sy") -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """Extract the token of an `authorization: Bearer <token>` header, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class Authenticator(Protocol):
    """Resolve a bearer token to a principal; None means the token is not valid."""

    async def authenticate(self, token: str) -> Principal | None: ...


class InternalAuthenticator:
    """Accepts only the shared internal token."""

    def __init__(self, internal_token: str) -> None:
        self._token = internal_token

    async def authenticate(self, token: str) -> Principal | None:
        if hmac.compare_digest(token, self._token):
            return Principal(tenant=INTERNAL_TENANT, user="service", internal=True)
        return None
