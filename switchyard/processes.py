"""Child processes of the local mesh, and the lifeline that guarantees none outlives us.

How no service is left behind:

* Each service runs under a small *lifeline* process (this file run as a script, standard
  library only) that starts in its own session, so it leads a process group holding the
  service and everything the service starts (a worker's slot processes).
* The launcher (`switchyard up`, the demo, a test) stops a service by sending SIGTERM to
  its lifeline, which forwards it to the service; after the grace period, or whenever the
  lifeline has exited, the launcher SIGKILLs the whole group, then reaps the lifeline.
* The lifeline's stdin is a pipe from the launcher. If the launcher dies without cleaning
  up (even by SIGKILL), the pipe closes; the lifeline then terminates the service and,
  after the grace period, kills its group. No prctl, no polling of the parent pid.
* Own groups also keep a terminal's Ctrl-C away from the services: it reaches only the
  launcher, which stops them in order (workers first, profile store last).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class ChildProcess:
    """One service: its lifeline process, its log file and how to stop it."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            self._popen = subprocess.Popen(
                [sys.executable, "-I", __file__, *self.argv],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        self.pid = self._popen.pid

    def exit_code(self) -> int | None:
        """The exit status once the lifeline (and so the service) has ended, else None."""
        try:
            result = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return self._popen.returncode if self._popen.returncode is not None else -1
        if result is None:
            return None
        return result.si_status if result.si_code == os.CLD_EXITED else -result.si_status

    def terminate(self) -> None:
        """Ask for a graceful stop (SIGTERM, forwarded by the lifeline to the service)."""
        if self._popen.returncode is None:
            self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the whole group (lifeline, service, its children), then reap the lifeline."""
        if self._popen.returncode is not None:
            return  # reaped already: the pid may name someone else's group by now
        # The lifeline is not reaped yet (a zombie at worst), so its pid still names our group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self._popen.stdin is not None:
            self._popen.stdin.close()
        self._popen.wait()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def tail(self, lines: int = 20) -> list[str]:
        """The last lines of the service's log."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 64 * 1024))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]


# --- the lifeline: runs as `python -I processes.py <service argv>`, standard library only ---


def _lifeline(argv: list[str], grace_s: float) -> int:
    service = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def forward(signum: int, _frame: object) -> None:
        service.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)

    launcher_gone = threading.Event()

    def watch_launcher() -> None:
        while os.read(0, 4096):  # unbuffered: no lock left held at shutdown
            pass  # returns b"" at EOF: the launcher is gone
        launcher_gone.set()
        if service.poll() is None:
            print("switchyard lifeline: launcher gone, stopping the service", file=sys.stderr, flush=True)
            service.terminate()
            deadline = time.monotonic() + grace_s
            while service.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        os.killpg(0, signal.SIGKILL)  # the service's children too, and this lifeline last

    watcher = threading.Thread(target=watch_launcher, daemon=True)
    watcher.start()
    code = service.wait()
    if launcher_gone.is_set():
        watcher.join()  # never returns: the watcher kills the whole group
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(_lifeline(sys.argv[1:], float(os.environ.get("SWITCHYARD_LIFELINE_GRACE_S", "10"))))
