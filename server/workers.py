"""The profiling workers `modelci serve` runs beside itself, kept alive while it serves.

Models are loaded, converted and run by workers (in their cage), never in the web
process. Each worker has a known name (``--name``), so that the jobs a worker leaves
behind can be handed back (``MongoJobQueue.release_workers``); one that dies (killed,
out of memory) is started again with the same name after its jobs are handed back,
so profiling never stays down until the next restart.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

from .embedded import stop_with_parent

logger = logging.getLogger("modelci.server")

# How long the workers have to hand their jobs back when the server stops.
STOP_TIMEOUT_S = 10.0


@dataclass
class WorkerProcesses:
    """``count`` worker processes claiming jobs from the hub at ``server_url``."""

    server_url: str
    count: int
    env: dict[str, str]
    allow_pickle: bool = False
    prefix: str = field(
        default_factory=lambda: f"{socket.gethostname()}:serve-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> None:
        for number in range(self.count):
            name = f"{self.prefix}:{number}"
            self.processes[name] = self.spawn(name)

    def spawn(self, name: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "modelci.server.cli", "worker"]
        command += ["--server", self.server_url, "--name", name]
        if self.allow_pickle:
            command.append("--allow-pickle")
        return subprocess.Popen(
            command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            preexec_fn=stop_with_parent if sys.platform == "linux" else None,
        )

    def dead(self) -> list[str]:
        """Names of the workers that have exited."""
        return [name for name, process in self.processes.items() if process.poll() is not None]

    def restart(self, name: str) -> None:
        code = self.processes[name].returncode
        logger.warning("worker %s exited (status %s): starting it again", name, code)
        self.processes[name] = self.spawn(name)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
        """SIGTERM the workers (each stops its job and hands it back), wait up to
        ``timeout_s``, kill what is left; their names, for the caller to hand back any
        job still RUNNING under them (a worker may not have reached the hub any more)."""
        for process in self.processes.values():
            process.terminate()
        deadline = time.monotonic() + timeout_s
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("worker %s did not stop in time: killed", name)
                process.kill()
                process.wait()
        return list(self.processes)
