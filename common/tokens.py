"""Assignment tokens: the scheduler signs (task id, attempt, worker) so that the profile
store can reject metrics for tasks that were never assigned, without asking anyone.

A token is the URL-safe base64 (unpadded) of the first 24 bytes of
HMAC-SHA256(key, "task_id \\x1f attempt \\x1f worker_id"), the key derived from the shared
secret. `verify_assignments` checks many at once for the profile store's intake; it says
exactly what `verify_assignment` says of each.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Sequence

_URLSAFE = bytes.maketrans(b"+/", b"-_")


@functools.lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"switchyard-assignment:" + secret.encode()).digest()


@functools.lru_cache(maxsize=8)
def _pads(secret: str) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states that have taken the HMAC inner and outer key pads (RFC 2104; the key
    is 32 bytes, shorter than the 64-byte block): a copy of each saves the two key blocks
    that every one-shot HMAC hashes again."""
    key = _key(secret).ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _raw(token: str) -> bytes:
    # Compared as bytes: a token with non-ASCII characters (or lone surrogates, which
    # become "?") is simply wrong, where comparing it as str would raise.
    return token.encode("utf-8", "replace")


def sign_assignment(secret: str, task_id: str, attempt: int, worker_id: str) -> str:
    msg = f"{task_id}\x1f{attempt}\x1f{worker_id}".encode()
    mac = hmac.digest(_key(secret), msg, "sha256")  # the one-shot C path: no HMAC object
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def verify_assignment(secret: str, token: str, task_id: str, attempt: int, worker_id: str) -> bool:
    expected = sign_assignment(secret, task_id, attempt, worker_id)
    return hmac.compare_digest(_raw(token), expected.encode())


def verify_assignments(
    secret: str,
    tokens: Sequence[str],
    task_ids: Sequence[str],
    attempts: Sequence[int],
    worker_ids: Sequence[str],
) -> list[bool]:
    """`verify_assignment` of each (token, task id, attempt, worker id) of the columns, in
    order; the columns have one length. Each MAC is checked in constant time on its own."""
    inner, outer = _pads(secret)
    inner_copy, outer_copy = inner.copy, outer.copy
    b2a, urlsafe, same, raw = binascii.b2a_base64, _URLSAFE, hmac.compare_digest, _raw
    out = []
    for token, task_id, attempt, worker_id in zip(tokens, task_ids, attempts, worker_ids, strict=True):
        h = inner_copy()
        h.update(f"{task_id}\x1f{attempt}\x1f{worker_id}".encode())
        mac = outer_copy()
        mac.update(h.digest())
        # 24 bytes make 32 base64 characters and no padding to strip.
        out.append(same(raw(token), b2a(mac.digest()[:24], newline=False).translate(urlsafe)))
    return out
