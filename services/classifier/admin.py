"""Tenant registry administration.

    python -m services.classifier.admin --database-url URL create-tenant acme --share 2 --max-queued 10000
    python -m services.classifier.admin --database-url URL set-tenant acme --rate 50 --burst 200
    python -m services.classifier.admin --database-url URL list-tenants
    python -m services.classifier.admin --database-url URL create-user acme alice
    python -m services.classifier.admin --database-url URL issue-token acme alice
    python -m services.classifier.admin --database-url URL revoke-token sy_...
    python -m services.classifier.admin --database-url URL seed-demo

`seed_demo_tenants(url)` is what `switchyard up` calls to get one token per demo tenant.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from common.db import create_engine, upgrade
from common.errors import NotFound, SwitchyardError
from services.classifier.model import UNLIMITED, Tenant, TenantQuotas
from services.classifier.sql_store import SqlTenantStore

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
DEMO_TENANTS = {"acme": ("alice", 1.0), "globex": ("bob", 1.0), "initech": ("carol", 1.0)}
DEFAULT_URL = "sqlite:///.switchyard/classifier.db"


async def _with_store(url: str, action: Callable[[SqlTenantStore], Awaitable[T]]) -> T:
    await asyncio.to_thread(upgrade, url, "classifier", MIGRATIONS)
    store = SqlTenantStore(create_engine(url, "classifier"))
    try:
        return await action(store)
    finally:
        await store.close()


async def seed_demo(store: SqlTenantStore) -> dict[str, str]:
    """Create the demo tenants and users that are missing; issue a fresh token for each."""
    tokens: dict[str, str] = {}
    for tenant, (user, share) in DEMO_TENANTS.items():
        if await store.get_tenant(tenant) is None:
            await store.create_tenant(tenant, share)
        if await store.get_user(tenant, user) is None:
            await store.create_user(tenant, user)
        tokens[tenant] = (await store.issue_token(tenant, user)).token
    return tokens


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def seed_demo_tenants(database_url: str) -> dict[str, str]:
    """Migrate, create tenants acme/globex/initech with a user each; return {tenant: token}."""
    return _run(_with_store(database_url, seed_demo))


# --option → TenantQuotas field; an option left out keeps the current value.
QUOTA_OPTIONS = {
    "max_queued": "max_queued_tasks",
    "max_running": "max_running_tasks",
    "rate": "submit_rate_per_second",
    "burst": "submit_burst",
}


def _quotas(args: argparse.Namespace, base: TenantQuotas) -> TenantQuotas | None:
    given = {field: getattr(args, option) for option, field in QUOTA_OPTIONS.items()}
    given = {field: value for field, value in given.items() if value is not None}
    return dataclasses.replace(base, **given) if given else None


def describe_quotas(quotas: TenantQuotas) -> str:
    def limit(value: float) -> str:
        return f"{value:g}" if value else "unlimited"

    return (
        f"queued {limit(quotas.max_queued_tasks)}, running {limit(quotas.max_running_tasks)}, "
        f"rate {limit(quotas.submit_rate_per_second)}/s, burst {limit(quotas.submit_burst)}"
    )


def _describe(tenant: Tenant) -> str:
    return f"{tenant.name} (share {tenant.share:g}; {describe_quotas(tenant.quotas)})"


def _table(tenants: list[Tenant]) -> str:
    rows: list[tuple[str, ...]] = [("TENANT", "SHARE", "MAX_QUEUED", "MAX_RUNNING", "RATE/S", "BURST")]
    for t in tenants:
        q = t.quotas
        values = (q.max_queued_tasks, q.max_running_tasks, q.submit_rate_per_second, q.submit_burst)
        rows.append((t.name, f"{t.share:g}", *(f"{v:g}" if v else "-" for v in values)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


async def _command(args: argparse.Namespace, store: SqlTenantStore) -> str:
    if args.command == "create-tenant":
        tenant = await store.create_tenant(args.name, args.share, _quotas(args, UNLIMITED) or UNLIMITED)
        return f"created tenant {_describe(tenant)}"
    if args.command == "set-tenant":
        current = await store.get_tenant(args.name)
        if current is None:
            raise NotFound("tenant", args.name)
        tenant = await store.update_tenant(args.name, share=args.share, quotas=_quotas(args, current.quotas))
        return f"updated tenant {_describe(tenant)}"
    if args.command == "list-tenants":
        tenants = await store.list_tenants()
        if args.json:
            return json.dumps([_tenant_json(t) for t in tenants], indent=2)
        return _table(tenants)
    if args.command == "create-user":
        user = await store.create_user(args.tenant, args.user)
        return f"created user {user.name} of tenant {user.tenant}"
    if args.command == "issue-token":
        return (await store.issue_token(args.tenant, args.user)).token
    if args.command == "revoke-token":
        return "revoked" if await store.revoke_token(args.token) else "no such active token"
    return json.dumps(await seed_demo(store), indent=2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.classifier.admin", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SWITCHYARD_CLASSIFIER_DATABASE_URL", DEFAULT_URL),
        help="classifier database (default: $SWITCHYARD_CLASSIFIER_DATABASE_URL or %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    tenant = sub.add_parser("create-tenant", help="create a tenant")
    tenant.add_argument("name")
    tenant.add_argument("--share", type=float, default=1.0, help="fair-share weight (default 1)")
    _quota_arguments(tenant)
    change = sub.add_parser("set-tenant", help="change a tenant's share or quotas (others stay)")
    change.add_argument("name")
    change.add_argument("--share", type=float, help="fair-share weight")
    _quota_arguments(change)
    listing = sub.add_parser("list-tenants", help="every tenant with its share and quotas")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    user = sub.add_parser("create-user", help="add a user to a tenant")
    user.add_argument("tenant")
    user.add_argument("user")
    issue = sub.add_parser("issue-token", help="issue a bearer token (printed once, stored hashed)")
    issue.add_argument("tenant")
    issue.add_argument("user")
    revoke = sub.add_parser("revoke-token", help="revoke a bearer token")
    revoke.add_argument("token")
    sub.add_parser("seed-demo", help="create acme, globex and initech; print {tenant: token} as JSON")
    return parser


def _quota_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("quotas (enforced by the scheduler; 0 = unlimited)")
    group.add_argument("--max-queued", type=int, metavar="N", help="most tasks queued or pending at once")
    group.add_argument("--max-running", type=int, metavar="N", help="most tasks assigned or running at once")
    group.add_argument("--rate", type=float, metavar="R", help="sustained submit rate, tasks per second")
    group.add_argument("--burst", type=int, metavar="B", help="submit burst (token-bucket size)")


def _tenant_json(tenant: Tenant) -> dict[str, object]:
    return {"name": tenant.name, "share": tenant.share, "quotas": dataclasses.asdict(tenant.quotas)}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        print(_run(_with_store(args.database_url, lambda store: _command(args, store))))
    except SwitchyardError as exc:
        details = "; ".join(f"{v.field}: {v.description}" for v in getattr(exc, "violations", []))
        print(f"error: {exc.message}" + (f" ({details})" if details else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
