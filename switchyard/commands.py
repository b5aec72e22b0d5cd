"""The client subcommands of `switchyard` (everything but `up`), each a small async function."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from switchyard import render, specs
from switchyard.client import Client
from switchyard.endpoints import health_status
from switchyard.errors import SwitchyardError
from switchyard.v1 import classifier_pb2, profile_store_pb2, profile_store_pb2_grpc, types_pb2

EXIT_TASKS_FAILED = 3


class UsageError(Exception):
    """The command line is wrong in a way argparse cannot see; exit code 2."""


def _key_values(pairs: Sequence[str], what: str, parse_json: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {pair!r} is not KEY=VALUE")
        out[key] = value
        if parse_json:
            with contextlib.suppress(json.JSONDecodeError):  # else plain text
                out[key] = json.loads(value)
    return out


def spec_from_args(args: argparse.Namespace) -> types_pb2.TaskSpec:
    """One TaskSpec from the spec options of `submit` and `classify`."""
    if not args.category:
        raise UsageError("give a CATEGORY or --file")
    deadline = None
    if args.deadline_s is not None:
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=args.deadline_s)
    latency = args.latency_target_ms / 1000 if args.latency_target_ms is not None else None
    try:
        return specs.task(
            args.category,
            model=args.model,
            model_version=args.model_version,
            precision=args.precision,
            min_precision=args.min_precision,
            batch_size=args.batch_size,
            items=args.items,
            params=_key_values(args.param, "--param", parse_json=True),
            labels=_key_values(args.label, "--label", parse_json=False),
            depends_on=args.depends_on,
            qos=args.qos,
            deadline=deadline,
            latency_target=latency,
            on_deadline_miss=args.on_deadline_miss,
            idempotency_key=args.idempotency_key,
            timeout=args.task_timeout_s,
            gpu_count=args.gpu_count,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def request_from_args(args: argparse.Namespace) -> classifier_pb2.SubmitTasksRequest:
    """The SubmitTasksRequest that `submit` sends (also used by `classify`)."""
    if args.file is not None:
        text = sys.stdin.read() if str(args.file) == "-" else Path(args.file).read_text()
        try:
            return specs.submit_request_from_json(json.loads(text))
        except (ValueError, json.JSONDecodeError) as exc:
            raise UsageError(f"{args.file}: {exc}") from None
    spec = spec_from_args(args)
    request = classifier_pb2.SubmitTasksRequest()
    if getattr(args, "split_items", 0):
        batch = args.split_batch or args.batch_size
        if batch <= 0:
            raise UsageError("--split-items needs --split-batch or --batch-size")
        request.split.CopyFrom(specs.split(spec, total_items=args.split_items, batch_size=batch))
    else:
        request.tasks.extend([spec] * max(1, args.count))
    return request


def _out(args: argparse.Namespace, text: str, data: Any) -> None:
    print(render.to_json(data) if args.json else text)


async def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    result = await client.submit_request(request_from_args(args))
    text = f"job {result.job_id}: {len(result.tasks)} tasks\n{render.tasks_table(result.tasks)}"
    _out(args, text, {"job_id": result.job_id, "tasks": result.tasks})
    if args.wait:
        return await follow(client, result.task_ids, args)
    return 0


async def cmd_classify(client: Client, args: argparse.Namespace) -> int:
    request = request_from_args(args)
    specs_ = list(request.tasks) + ([request.split.template] if request.HasField("split") else [])
    found = await client.classify(specs_)
    _out(args, render.classifications_table(specs_, found), found)
    return 0


async def cmd_get(client: Client, args: argparse.Namespace) -> int:
    tasks = await client.get_tasks(args.task_ids)
    _out(args, render.tasks_table(tasks), tasks)
    return 0


async def cmd_list(client: Client, args: argparse.Namespace) -> int:
    tasks: list[types_pb2.Task] = []
    try:
        async for task in client.list_tasks(job_id=args.job, states=args.state, page_size=args.page_size):
            tasks.append(task)
            if args.limit and len(tasks) >= args.limit:
                break
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _out(args, render.tasks_table(tasks), tasks)
    return 0


async def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    ids = list(args.task_ids)
    if args.job:
        ids += list((await client.get_job(args.job)).task_ids)
    if not ids:
        raise UsageError("give TASK_IDs or --job")
    return await follow(client, ids, args)


async def follow(client: Client, ids: Sequence[str], args: argparse.Namespace) -> int:
    """Print each state change until every task is terminal; 3 if any did not succeed."""
    last: dict[str, int] = {}

    def show(task: types_pb2.Task) -> None:
        if last.get(task.id) == task.state:
            return
        last[task.id] = task.state
        if args.json:
            print(json.dumps(json.loads(render.to_json(task))), flush=True)
        else:
            when = dt.datetime.now().strftime("%H:%M:%S")
            worker = f" on {task.worker_id}" if task.worker_id else ""
            error = f" ({task.error.reason}: {task.error.message})" if task.error.reason else ""
            print(f"{when}  {task.id}  {render.state(task.state)}{worker}{error}", flush=True)

    done = await client.wait(ids, on_update=show)
    ok = all(t.state == types_pb2.TASK_STATE_SUCCEEDED for t in done)
    return 0 if ok else EXIT_TASKS_FAILED


async def cmd_job(client: Client, args: argparse.Namespace) -> int:
    if not args.watch:
        job = await client.get_job(args.job_id)
        _out(args, render.job_text(job), job)
        return 0
    async for job in client.watch_job(args.job_id):
        _out(args, render.job_text(job) + "\n", job)
        if job.state not in (types_pb2.JOB_STATE_ACTIVE, types_pb2.JOB_STATE_UNSPECIFIED):
            break
    return 0


async def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    if not args.task_ids and not args.job:
        raise UsageError("give TASK_IDs or --job")
    tasks = await client.cancel(ids=args.task_ids, job_id=args.job)
    _out(args, render.tasks_table(tasks), tasks)
    return 0


async def cmd_explain(client: Client, args: argparse.Namespace) -> int:
    explanation = await client.explain(args.task_id)
    _out(args, render.explanation_text(explanation), explanation)
    return 0


async def cmd_health(args: argparse.Namespace) -> int:
    addresses = args.addresses or [args.address]
    statuses = [await health_status(a, timeout=min(args.timeout, 5.0)) for a in addresses]
    rows = list(zip(addresses, statuses, strict=True))
    _out(args, render.table(("ADDRESS", "STATUS"), rows), dict(rows))
    return 0 if all(s == "SERVING" for s in statuses) else 1


PROFILE_STORE_ADDRESS = "127.0.0.1:50053"
INTERNAL_TOKEN_ENV = "SWITCHYARD_INTERNAL_TOKEN"


@contextlib.asynccontextmanager
async def _profile_store(args: argparse.Namespace) -> AsyncIterator[tuple[Any, tuple[tuple[str, str], ...]]]:
    """The profile store's stub and the internal-token metadata (operator commands)."""
    token = getattr(args, "internal_token", None) or os.environ.get(INTERNAL_TOKEN_ENV, "")
    if not token:
        raise UsageError(f"no internal token: pass --internal-token or set {INTERNAL_TOKEN_ENV}")
    address = getattr(args, "profile_store", None) or PROFILE_STORE_ADDRESS
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            yield (
                profile_store_pb2_grpc.ProfileStoreServiceStub(channel),
                (("authorization", f"Bearer {token}"),),
            )
        except grpc.aio.AioRpcError as exc:
            error = SwitchyardError.from_rpc_error(exc)
            if error.code == "UNAVAILABLE" and not error.reason:
                error.message += f" (is the profile store running at {address}?)"
            raise error from None


async def cmd_profiles(args: argparse.Namespace) -> int:
    request = profile_store_pb2.ListProfilesRequest(
        model_name=args.model or "", device_model=args.device or "", page_size=500
    )
    if args.precision:
        try:
            request.precision = specs.parse_precision(args.precision)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    profiles: list[types_pb2.Profile] = []
    async with _profile_store(args) as (stub, metadata):
        while True:
            page = await stub.ListProfiles(request, metadata=metadata, timeout=args.timeout)
            profiles.extend(page.profiles)
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    _out(args, render.profiles_table(profiles), profiles)
    return 0


async def cmd_tenants(args: argparse.Namespace) -> int:
    async with _profile_store(args) as (stub, metadata):
        reply = await stub.ListTenantScores(
            profile_store_pb2.ListTenantScoresRequest(), metadata=metadata, timeout=args.timeout
        )
    scores = sorted(reply.scores, key=lambda s: (s.usage_score, s.tenant))
    _out(args, render.tenant_scores_table(scores), scores)
    return 0


OPERATOR_COMMANDS: dict[str, Callable[[argparse.Namespace], Awaitable[int]]] = {
    "profiles": cmd_profiles,
    "tenants": cmd_tenants,
}

COMMANDS: dict[str, Callable[[Client, argparse.Namespace], Awaitable[int]]] = {
    "submit": cmd_submit,
    "classify": cmd_classify,
    "get": cmd_get,
    "list": cmd_list,
    "watch": cmd_watch,
    "job": cmd_job,
    "cancel": cmd_cancel,
    "explain": cmd_explain,
}


async def run(args: argparse.Namespace) -> int:
    """Run one client subcommand; SwitchyardError and UsageError propagate to `cli.main`."""
    if args.command == "health":
        return await cmd_health(args)
    if args.command in OPERATOR_COMMANDS:
        return await OPERATOR_COMMANDS[args.command](args)
    if not args.token:
        raise UsageError("no token: pass --token or set SWITCHYARD_TOKEN (`switchyard up` prints tokens)")
    async with Client(args.address, args.token, timeout=args.timeout) as client:
        try:
            return await COMMANDS[args.command](client, args)
        except SwitchyardError as exc:
            if exc.code == "UNAVAILABLE" and not exc.reason:
                exc.message += f" (is the classifier running at {args.address}?)"
            raise
