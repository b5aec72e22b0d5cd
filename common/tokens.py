"""Assignment tokens: the scheduler signs (task id, attempt, worker) so that the profile
store can reject metrics for tasks that were never assigned, without asking anyone."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"switchyard-assignment:" + secret.encode()).digest()


def sign_assignment(secret: str, task_id: str, attempt: int, worker_id: str) -> str:
    msg = f"{task_id}\x1f{attempt}\x1f{worker_id}".encode()
    mac = hmac.new(_key(secret), msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def verify_assignment(secret: str, token: str, task_id: str, attempt: int, worker_id: str) -> bool:
    return hmac.compare_digest(token, sign_assignment(secret, task_id, attempt, worker_id))
