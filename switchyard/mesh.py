"""Start the whole mesh on this machine as separate processes (what `switchyard up` runs).

    async with Mesh(MeshOptions(data_dir=tmp, base_port=0)) as mesh:
        async with Client(mesh.classifier_address, mesh.tokens["acme"]) as client: ...

Order: profile store → scheduler → classifier and workers, each tier SERVING (grpc health)
before the next starts. Stopping goes the other way. How no child outlives the launcher is
explained in `switchyard.processes`. Services import nothing from here: this module only
sets their `SWITCHYARD_*` environment, and imports `services` lazily to seed tenants.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchyard.endpoints import PortPlan, is_serving, plan_ports
from switchyard.errors import SwitchyardError
from switchyard.processes import ChildProcess

log = logging.getLogger(__name__)
SERVICE_DBS = ("classifier", "scheduler", "profile_store")
LOCAL_PROFILE_NOTE = "no GPU {why}: loaded the local category profile (GPU_ONLY categories become CPU_OR_GPU)"


class MeshError(SwitchyardError):
    """The local mesh could not start or a service died; `log_tail` shows why."""

    def __init__(self, reason: str, message: str, *, service: str = "", log_tail: list[str] | None = None):
        super().__init__("UNAVAILABLE", message, reason=reason)
        self.service = service
        self.log_tail = list(log_tail or [])


@dataclass(frozen=True, kw_only=True)
class MeshOptions:
    """How to start the mesh; every field has the default that `switchyard up` uses."""

    data_dir: Path = Path(".switchyard")
    # None: one SQLite file per service in data_dir; else one shared database (postgresql://…).
    database_url: str | None = None
    cpu_workers: int = 2
    # None: one per GPU that torch sees (0 without one).
    gpu_workers: int | None = None
    # None: the worker's default.
    slots: int | None = None
    # Classifier port; scheduler +1, profile store +2, workers from +10. 0: free ports.
    base_port: int = 50051
    host: str = "127.0.0.1"
    # None: a fresh random secret per start.
    internal_token: str | None = None
    # None: "local" when no GPU worker runs, else "default".
    category_profile: str | None = None
    seed_tenants: bool = True
    startup_timeout_s: float = 120.0
    grace_period_s: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"
    # Extra environment for every service (e.g. SWITCHYARD_SCHEDULER_CYCLE_INTERVAL_S).
    env: Mapping[str, str] = field(default_factory=dict)


def visible_gpus() -> int:
    """How many CUDA devices torch sees here (0 without torch or without a GPU)."""
    try:
        torch: Any = importlib.import_module("torch")
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install means no usable GPU
        return 0


def _seed_demo_tenants(database_url: str) -> dict[str, str]:
    admin: Any = importlib.import_module("services.classifier.admin")
    return dict(admin.seed_demo_tenants(database_url))


class Mesh:
    """The mesh's processes; addresses, tokens and the internal token once started."""

    def __init__(self, options: MeshOptions | None = None, *, echo: Callable[[str], None] | None = None):
        self.options = options or MeshOptions()
        self.echo = echo or log.info
        self.data_dir = self.options.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.artifact_dir = self.data_dir / "artifacts"
        self.internal_token = self.options.internal_token or secrets.token_urlsafe(24)
        self.tokens: dict[str, str] = {}
        self.gpu_count = 0
        self.gpu_workers = 0
        self.category_profile = "default"
        self.ports: PortPlan | None = None
        self.processes: dict[str, ChildProcess] = {}

    # --- addresses ---

    def address(self, service: str) -> str:
        if self.ports is None:
            raise MeshError("NOT_STARTED", "the mesh has not been started")
        return f"{self.options.host}:{self.ports.port(service)}"

    @property
    def classifier_address(self) -> str:
        return self.address("classifier")

    @property
    def scheduler_address(self) -> str:
        return self.address("scheduler")

    @property
    def profile_store_address(self) -> str:
        return self.address("profile_store")

    @property
    def worker_addresses(self) -> dict[str, str]:
        """Worker id ("cpu-1", "gpu-1", …) → its WorkerService address."""
        return {w: self.address(w) for w in self.ports.workers} if self.ports else {}

    @property
    def metrics_addresses(self) -> dict[str, str]:
        """Each service's Prometheus endpoint (http://host:port/metrics)."""
        plan = self._require_ports()
        return {name: f"{self.options.host}:{port}" for name, port in plan.metrics.items()}

    @property
    def addresses(self) -> dict[str, str]:
        """Every service → address, front door first."""
        names = ["classifier", "scheduler", "profile_store", *(self.ports.workers if self.ports else [])]
        return {n: self.address(n) for n in names} if self.ports else {}

    def database_url(self, service: str) -> str:
        if self.options.database_url:
            return self.options.database_url
        return f"sqlite:///{self.data_dir / f'{service}.db'}"

    # --- lifecycle ---

    async def __aenter__(self) -> Mesh:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every service and wait until all are SERVING; on any failure stop them all."""
        atexit.register(self.kill)
        try:
            await self._start()
        except BaseException:
            await asyncio.shield(self.stop())
            raise

    async def _start(self) -> None:
        deadline = time.monotonic() + self.options.startup_timeout_s
        await self._plan()
        self._spawn("profile_store")
        await self._wait_serving(["profile_store"], deadline)
        self._spawn("scheduler")
        seeding = asyncio.create_task(self._seed())
        try:
            await self._wait_serving(["scheduler"], deadline)
        finally:
            await seeding
        rest = ["classifier", *self._require_ports().workers]
        for name in rest:
            self._spawn(name)
        await self._wait_serving(rest, deadline)
        self.echo(f"mesh SERVING: {len(self.processes)} services, logs in {self.log_dir}")

    async def _plan(self) -> None:
        opts = self.options
        self.gpu_count = await asyncio.to_thread(visible_gpus)
        self.gpu_workers = self.gpu_count if opts.gpu_workers is None else opts.gpu_workers
        if self.gpu_workers > 0 and self.gpu_count == 0:
            raise MeshError("NO_GPU", f"{self.gpu_workers} GPU workers asked for, but torch sees no GPU")
        if self.gpu_workers + opts.cpu_workers < 1:
            raise MeshError("NO_WORKERS", "the mesh needs at least one worker")
        self.category_profile = opts.category_profile or ("local" if self.gpu_workers == 0 else "default")
        if self.category_profile == "local":
            why = "found" if self.gpu_count == 0 else "worker asked for"
            self.echo(LOCAL_PROFILE_NOTE.format(why=why))
        workers = [f"cpu-{i + 1}" for i in range(opts.cpu_workers)]
        workers += [f"gpu-{i + 1}" for i in range(self.gpu_workers)]
        self.ports = plan_ports(opts.host, opts.base_port, workers)
        for path in (self.data_dir, self.log_dir, self.artifact_dir):
            path.mkdir(parents=True, exist_ok=True)

    def _require_ports(self) -> PortPlan:
        if self.ports is None:
            raise MeshError("NOT_STARTED", "the mesh has not been started")
        return self.ports

    async def _seed(self) -> None:
        if self.options.seed_tenants:
            self.tokens = await asyncio.to_thread(_seed_demo_tenants, self.database_url("classifier"))

    def _spawn(self, name: str) -> None:
        module = "worker" if name in self._require_ports().workers else name
        env = self._environment(name)
        self.echo(f"starting {name} on {self.address(name)}")
        self.processes[name] = ChildProcess(
            name, [sys.executable, "-m", f"services.{module}"], env=env, log_path=self.log_dir / f"{name}.log"
        )

    def _environment(self, name: str) -> dict[str, str]:
        opts = self.options
        env = dict(os.environ)
        root = Path(__file__).resolve().parent.parent
        if (root / "services").is_dir():  # a source checkout: let children import `services`
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
        env.update(
            PYTHONUNBUFFERED="1",
            SWITCHYARD_INTERNAL_TOKEN=self.internal_token,
            SWITCHYARD_LOG_LEVEL=opts.log_level,
            SWITCHYARD_LOG_FORMAT=opts.log_format,
            SWITCHYARD_LIFELINE_GRACE_S=str(opts.grace_period_s),
        )
        env.update(opts.env)
        section = "worker" if name in self._require_ports().workers else name
        plan = self._require_ports()
        settings = {"host": opts.host, "port": str(plan.port(name))}
        if name in plan.metrics:
            settings["metrics_port"] = str(plan.metrics[name])
        settings.update(self._settings(name))
        env.update({f"SWITCHYARD_{section.upper()}_{k.upper()}": v for k, v in settings.items()})
        return env

    def _settings(self, name: str) -> dict[str, str]:
        """The section-specific settings of one service."""
        if name == "profile_store":
            return {"database_url": self.database_url(name), "classifier_address": self.classifier_address}
        if name == "scheduler":
            return {
                "database_url": self.database_url(name),
                "profile_store_address": self.profile_store_address,
                "classifier_address": self.classifier_address,
            }
        if name == "classifier":
            return {
                "database_url": self.database_url(name),
                "scheduler_address": self.scheduler_address,
                "category_profile": self.category_profile,
            }
        return self._worker_settings(name)

    def _worker_settings(self, worker_id: str) -> dict[str, str]:
        kind, number = worker_id.split("-")
        device = "cpu" if kind == "cpu" else f"cuda:{(int(number) - 1) % max(self.gpu_count, 1)}"
        out = {
            "worker_id": worker_id,
            "device": device,
            "scheduler_address": self.scheduler_address,
            "profile_store_address": self.profile_store_address,
            "artifact_dir": str(self.artifact_dir),
        }
        if self.options.slots is not None:
            out["slots"] = str(self.options.slots)
        return out

    async def _wait_serving(self, names: list[str], deadline: float) -> None:
        pending = list(names)
        while pending:
            for name in list(pending):
                self._check_alive(name)
                if await is_serving(self.address(name), timeout=1.0):
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                child = self.processes[pending[0]]
                waited = self.options.startup_timeout_s
                raise MeshError(
                    "STARTUP_TIMEOUT",
                    f"{pending[0]} not SERVING after {waited:g}s (log: {child.log_path})",
                    service=pending[0],
                    log_tail=child.tail(),
                )
            if pending:
                await asyncio.sleep(0.2)

    def _check_alive(self, name: str) -> None:
        child = self.processes[name]
        code = child.exit_code()
        if code is not None:
            raise MeshError(
                "SERVICE_EXITED",
                f"{name} exited with status {code} (log: {child.log_path})",
                service=name,
                log_tail=child.tail(),
            )

    async def wait_for_exit(self, poll_s: float = 0.5) -> MeshError:
        """Return (as an error to raise or print) when any service exits on its own."""
        while True:
            for name in self.processes:
                try:
                    self._check_alive(name)
                except MeshError as exc:
                    return exc
            await asyncio.sleep(poll_s)

    async def restart(self, name: str, *, crash: bool = True) -> None:
        """Stop one service (SIGKILL, as a crash, unless crash=False) and start it again;
        returns once it reports SERVING. Its earlier log is kept as `<name>.log.1`."""
        child = self.processes[name]
        if crash:
            child.kill()
        else:
            child.terminate()
            end = time.monotonic() + self.options.grace_period_s
            while child.exit_code() is None and time.monotonic() < end:
                await asyncio.sleep(0.1)
            child.kill()
        child.log_path.replace(child.log_path.with_name(child.log_path.name + ".1"))
        self._spawn(name)
        await self._wait_serving([name], time.monotonic() + self.options.startup_timeout_s)

    async def stop(self) -> None:
        """Stop gracefully in reverse order, then SIGKILL what is left; always reaps all."""
        workers = list(self.ports.workers if self.ports else [])
        order = [["classifier"], workers, ["scheduler"], ["profile_store"]]
        try:
            for tier in order:
                children = [self.processes[n] for n in tier if n in self.processes]
                for child in children:
                    child.terminate()
                end = time.monotonic() + self.options.grace_period_s
                while any(c.exit_code() is None for c in children) and time.monotonic() < end:
                    await asyncio.sleep(0.1)
                for child in children:
                    child.kill()
        finally:
            self.kill()

    def kill(self) -> None:
        """Immediately SIGKILL every service and reap it (also registered with atexit)."""
        for child in self.processes.values():
            child.kill()
        atexit.unregister(self.kill)
