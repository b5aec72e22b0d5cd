"""Assignment tokens: the scheduler signs (task id, attempt, worker) so that the profile
store can reject metrics for tasks that were never assigned, without asking anyone."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac


@functools.lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"switchyard-assignment:" + secret.encode()).digest()


def sign_assignment(secret: str, task_id: str, attempt: int, worker_id: str) -> str:
    msg = f"{task_id}\x1f{attempt}\x1f{worker_id}".encode()
    mac = hmac.digest(_key(secret), msg, "sha256")  # the one-shot C path: no HMAC object
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def verify_assignment(secret: str, token: str, task_id: str, attempt: int, worker_id: str) -> bool:
    return hmac.compare_digest(token, sign_assignment(secret, task_id, attempt, worker_id))
