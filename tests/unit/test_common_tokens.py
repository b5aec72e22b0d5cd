"""Assignment tokens: signing, the single check and the batch check of many at once."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from common.tokens import sign_assignment, verify_assignment, verify_assignments

SECRET = "tokens-test-secret"

Claim = tuple[str, str, int, str]  # token, task id, attempt, worker id


def _batch(secret: str, claims: list[Claim]) -> list[bool]:
    tokens, tasks, attempts, workers = (list(c) for c in zip(*claims, strict=True)) if claims else ([],) * 4
    return verify_assignments(secret, tokens, tasks, attempts, workers)


def _single(secret: str, claims: list[Claim]) -> list[bool]:
    return [verify_assignment(secret, *claim) for claim in claims]


def test_a_token_is_the_truncated_hmac_of_the_assignment() -> None:
    key = hashlib.sha256(b"switchyard-assignment:" + SECRET.encode()).digest()
    mac = hmac.new(key, b"t1\x1f2\x1fw1", "sha256").digest()[:24]
    assert sign_assignment(SECRET, "t1", 2, "w1") == base64.urlsafe_b64encode(mac).decode()


def test_forged_replayed_and_wrong_worker_tokens_are_rejected_in_a_batch_as_alone() -> None:
    good = [(sign_assignment(SECRET, f"t{i}", 1, f"w{i % 3}"), f"t{i}", 1, f"w{i % 3}") for i in range(6)]
    token = good[0][0]
    claims: list[Claim] = [
        *good,
        (sign_assignment("another-secret", "t0", 1, "w0"), "t0", 1, "w0"),  # forged: other secret
        (token[:-1] + ("A" if token[-1] != "A" else "B"), "t0", 1, "w0"),  # forged: one character
        (token, "t0", 2, "w0"),  # replayed for another attempt
        (token, "t0", 1, "w1"),  # another worker
        (token, "t1", 1, "w0"),  # another task
        ("", "t0", 1, "w0"),
        (token + "=", "t0", 1, "w0"),
        (token[:24], "t0", 1, "w0"),
        ("é" * 32, "t0", 1, "w0"),  # not ASCII: wrong, not an error
    ]
    single = _single(SECRET, claims)
    assert single == [True] * 6 + [False] * 9
    assert _batch(SECRET, claims) == single
    # A bad token spoils nothing around it.
    mixed = [claims[6], good[1], claims[8], good[2]]
    assert _batch(SECRET, mixed) == [False, True, False, True]
    assert _batch(SECRET, []) == []


def test_the_batch_check_follows_the_secret() -> None:
    claims: list[Claim] = [(sign_assignment(SECRET, "t", 1, "w"), "t", 1, "w")]
    assert _batch(SECRET, claims) == [True]
    assert _batch("another-secret", claims) == [False]
    assert _batch(SECRET, claims) == [True]  # cached pads of two secrets do not mix


text = st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(max_size=20),
    assignments=st.lists(st.tuples(text, st.integers(-(2**40), 2**40), text), max_size=8),
    tampered=st.lists(st.booleans(), max_size=8),
)
def test_batch_and_single_checks_agree(
    secret: str, assignments: list[tuple[str, int, str]], tampered: list[bool]
) -> None:
    claims: list[Claim] = []
    for i, (task, attempt, worker) in enumerate(assignments):
        token = sign_assignment(secret, task, attempt, worker)
        if i < len(tampered) and tampered[i]:
            attempt += 1  # the token of the attempt before
        claims.append((token, task, attempt, worker))
    single = _single(secret, claims)
    assert _batch(secret, claims) == single
    assert single == [not (i < len(tampered) and tampered[i]) for i in range(len(claims))]
