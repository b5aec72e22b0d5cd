"""The `switchyard` command line: start a local mesh, submit and follow tasks, check health.

    switchyard up
    export SWITCHYARD_TOKEN=...      # printed by `switchyard up`
    switchyard submit inference --model resnet_small --precision bf16 --wait
    switchyard watch TASK_ID ...
    switchyard health 127.0.0.1:50051 127.0.0.1:50052

Exit codes: 0 success, 1 a call or the mesh failed, 2 bad usage, 3 some task did not succeed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from switchyard import commands
from switchyard.client import DEFAULT_ADDRESS
from switchyard.errors import SwitchyardError
from switchyard.render import error_lines

ADDRESS_ENV = "SWITCHYARD_ADDRESS"
TOKEN_ENV = "SWITCHYARD_TOKEN"


def _connection_options() -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand (defaults resolved in `main`)."""
    parent = argparse.ArgumentParser(add_help=False)
    s = argparse.SUPPRESS
    parent.add_argument(
        "--address", default=s, help=f"classifier address (${ADDRESS_ENV}, {DEFAULT_ADDRESS})"
    )
    parent.add_argument("--token", default=s, help=f"tenant bearer token (${TOKEN_ENV})")
    parent.add_argument("--json", action="store_true", default=s, help="print JSON instead of tables")
    parent.add_argument("--timeout", type=float, default=s, help="seconds per call (30)")
    return parent


def _spec_options() -> argparse.ArgumentParser:
    """How `submit` and `classify` describe one task spec."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("category", nargs="?", help="e.g. inference, create_synthetic_data, preprocess, noop")
    p.add_argument("--file", type=Path, help="proto-JSON: a TaskSpec, a list, or {tasks, split}; '-' = stdin")
    p.add_argument("--model", default="", help="zoo model: mlp, resnet_small, transformer_encoder")
    p.add_argument("--model-version", default="")
    p.add_argument("--precision", help="fp32, bf16, fp16 or int8")
    p.add_argument("--min-precision", help="lowest precision the task accepts")
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--items", type=int, default=0, help="item count of the task")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="JSON or text value")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--depends-on", action="append", default=[], metavar="TASK_ID")
    p.add_argument("--qos", help="latency_critical, standard or batch")
    p.add_argument("--deadline-s", type=float, help="deadline, seconds from now")
    p.add_argument("--latency-target-ms", type=float)
    p.add_argument("--on-deadline-miss", help="run_anyway or expire")
    p.add_argument("--idempotency-key", default="")
    p.add_argument("--task-timeout-s", type=float, help="time limit of one attempt")
    p.add_argument("--gpu-count", type=float, default=0.0)
    p.add_argument("--count", type=int, default=1, help="submit this many copies of the spec")
    return p


def build_parser() -> argparse.ArgumentParser:
    conn = _connection_options()
    parser = argparse.ArgumentParser(prog="switchyard", description=__doc__.split("\n")[0], parents=[conn])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_up(sub)
    _add_simulate(sub)
    spec = _spec_options()
    submit = sub.add_parser("submit", parents=[conn, spec], help="submit tasks; prints job and task ids")
    submit.add_argument("--split-items", type=int, default=0, help="split N items into batched tasks")
    submit.add_argument("--split-batch", type=int, default=0, help="items per split task (--batch-size)")
    submit.add_argument("--wait", action="store_true", help="follow the tasks until they finish")
    sub.add_parser("classify", parents=[conn, spec], help="show category and group a spec would get")
    get = sub.add_parser("get", parents=[conn], help="show tasks")
    get.add_argument("task_ids", nargs="+", metavar="TASK_ID")
    lst = sub.add_parser("list", parents=[conn], help="list the tenant's tasks")
    lst.add_argument("--job", default="", help="only this job's tasks")
    lst.add_argument("--state", action="append", default=[], help="only tasks in this state (repeatable)")
    lst.add_argument("--page-size", type=int, default=100)
    lst.add_argument("--limit", type=int, default=0, help="stop after this many tasks")
    watch = sub.add_parser("watch", parents=[conn], help="print state changes until all are finished")
    watch.add_argument("task_ids", nargs="*", metavar="TASK_ID")
    watch.add_argument("--job", default="", help="watch every task of this job")
    job = sub.add_parser("job", parents=[conn], help="show a job's progress")
    job.add_argument("job_id")
    job.add_argument("--watch", action="store_true", help="print progress until the job finishes")
    cancel = sub.add_parser("cancel", parents=[conn], help="cancel tasks or a whole job")
    cancel.add_argument("task_ids", nargs="*", metavar="TASK_ID")
    cancel.add_argument("--job", default="", help="cancel every unfinished task of this job")
    explain = sub.add_parser("explain", parents=[conn], help="why a task has its priority and waits")
    explain.add_argument("task_id")
    health = sub.add_parser("health", parents=[conn], help="grpc health of each address (no token)")
    health.add_argument("addresses", nargs="*", metavar="ADDRESS", help="default: --address")
    _add_operator_commands(sub, conn)
    return parser


def _add_operator_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], conn: argparse.ArgumentParser
) -> None:
    """`profiles` and `tenants`: read the profile store with the internal token."""
    op = argparse.ArgumentParser(add_help=False)
    op.add_argument(
        "--profile-store", default="127.0.0.1:50053", help="profile store address (127.0.0.1:50053)"
    )
    op.add_argument("--internal-token", help="service-to-service token ($SWITCHYARD_INTERNAL_TOKEN)")
    profiles = sub.add_parser("profiles", parents=[conn, op], help="performance profiles (operators)")
    profiles.add_argument("--model", default="", help="only this model name")
    profiles.add_argument("--device", default="", help="only this device model")
    profiles.add_argument("--precision", help="only this precision: fp32, bf16, fp16 or int8")
    sub.add_parser("tenants", parents=[conn, op], help="tenant usage and fair-share scores (operators)")


def _add_up(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser(
        "up",
        help="start the whole mesh on this machine until Ctrl-C",
        description="Start profile store, scheduler, classifier and workers as separate processes, "
        "seed the demo tenants, print addresses and tokens, and run until Ctrl-C or SIGTERM.",
    )
    up.add_argument("--data-dir", type=Path, default=Path(".switchyard"), help="databases, logs, artifacts")
    up.add_argument("--database-url", help="one shared database (postgresql://…); default SQLite files")
    up.add_argument("--cpu-workers", type=int, default=2, help="CPU worker processes (2)")
    up.add_argument("--gpu-workers", type=int, help="GPU worker processes (default: one per GPU seen)")
    up.add_argument("--slots", type=int, help="slots per worker (worker default)")
    ports = "classifier port; scheduler +1, profile store +2, workers +10…; 0 picks free ports"
    up.add_argument("--base-port", type=int, default=50051, help=ports)
    up.add_argument("--host", default="127.0.0.1", help="interface every service binds")
    up.add_argument("--internal-token", help="service-to-service secret (default: random per run)")
    up.add_argument("--category-profile", choices=["default", "local"], help="default: local without GPU")
    up.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to reach SERVING")
    up.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    up.add_argument("--log-format", default="text", choices=["text", "json"])


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = sub.add_parser(
        "simulate",
        help="replay a trace against the scheduling policy on a virtual clock (no services)",
        description="Discrete-event simulation of the pure scheduling core beside FIFO and "
        "least-loaded baselines; see docs/simulator.md.",
    )
    from services.scheduler.simulator.cli import add_arguments  # the simulator is pure Python

    add_arguments(simulate)


def resolve_connection(args: argparse.Namespace, env: dict[str, str] | None = None) -> argparse.Namespace:
    """Fill --address, --token, --json and --timeout from the environment and defaults."""
    env = dict(os.environ if env is None else env)
    args.address = getattr(args, "address", None) or env.get(ADDRESS_ENV) or DEFAULT_ADDRESS
    args.token = getattr(args, "token", None) or env.get(TOKEN_ENV) or ""
    args.json = bool(getattr(args, "json", False))
    args.timeout = float(getattr(args, "timeout", 30.0))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = resolve_connection(build_parser().parse_args(argv))
    try:
        if args.command == "simulate":
            from services.scheduler.simulator.cli import run as run_simulation

            return run_simulation(args)
        if args.command == "up":
            from switchyard.up import run_up  # imports the launcher only when asked

            return run_up(args)
        return asyncio.run(commands.run(args))
    except SwitchyardError as exc:
        print("\n".join(error_lines(exc)), file=sys.stderr)
        return 1
    except commands.UsageError as exc:
        print(f"switchyard {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `switchyard list --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
