"""The profiling workers `modelci serve` runs beside itself, kept alive while it serves.

Models are loaded, converted and run by workers (in their cage), never in the web
process. Each worker claims in both lanes (``modelci.profiling.worker``: profiling one job
at a time, conversions beside it), so a long profile holds no conversion behind it.
Each worker has a known name (``--name``), so that the jobs a worker leaves behind can
be handed back (``MongoJobQueue.release_workers``); one that dies (killed, out of
memory) is started again with the same name after its jobs are handed back, so
profiling never stays down until the next restart.

With ``serve --processes N`` the workers are started once, before the web processes
(``prepare_processes``), and their jobs handed back once after (``hand_back_jobs``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError

from modelci.core.identity import Scope

from .embedded import stop_with_parent
from .job_queue import MongoJobQueue
from .metrics import Metrics
from .services import hub_services
from .settings import Settings
from .token_store import TokenStore

logger = logging.getLogger("modelci.server")

# How long the workers have to hand their jobs back when the server stops.
STOP_TIMEOUT_S = 10.0
WORKER_CHECK_S = 2.0  # how often serve looks for workers that died
HAND_BACK_TIMEOUT_S = 5.0
LOCAL_WORKER_TOKEN = "serve-worker"


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
        # -P: not the current folder first on the import path, where another `modelci`
        # (a checkout, say) would be imported instead of this one and the worker would
        # die at every start while the server reports ready.
        command = [sys.executable, "-P", "-m", "modelci.cli", "worker"]
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


async def start_workers(settings: Settings, tokens: TokenStore) -> WorkerProcesses:
    """The worker processes `serve` runs beside itself, with a token of their own when
    auth is on."""
    env = dict(os.environ)
    if settings.auth_enabled() and settings.workers:
        await tokens.revoke_quietly(LOCAL_WORKER_TOKEN)
        _, env["MODELCI_TOKEN"] = await tokens.create(LOCAL_WORKER_TOKEN, [Scope.worker])
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    workers = WorkerProcesses(
        f"http://{host}:{settings.port}", settings.workers, env, settings.allow_pickle
    )
    workers.start()
    return workers


async def keep_workers_alive(workers: WorkerProcesses, jobs: MongoJobQueue) -> None:
    """A worker that died (killed, out of memory) is started again, its jobs handed back
    first, so profiling never stays down until the next restart."""
    while True:
        await asyncio.sleep(WORKER_CHECK_S)
        for name in workers.dead():
            try:
                await jobs.release_workers([name], "its worker died")
            except PyMongoError as error:
                # The database is down (being restarted, say): the jobs' leases run out
                # and they are claimed again; the worker is needed meanwhile.
                logger.warning("could not hand back the jobs of worker %s: %s", name, error)
            workers.restart(name)


async def release_stopped(jobs: MongoJobQueue, stopped: list[str]) -> None:
    """The jobs still RUNNING under workers that have stopped, handed back: a worker's own
    hand-back may not have reached a web process any more."""
    try:
        released = await asyncio.wait_for(
            jobs.release_workers(stopped, "stopping (the hub shut down)"), HAND_BACK_TIMEOUT_S
        )
    except (PyMongoError, TimeoutError) as error:
        # A database that does not answer must not hold the hub's stop for the client's
        # 30 s server selection; the jobs' leases run out instead.
        logger.warning(
            "could not hand back the running jobs at shutdown (%s): the database does not "
            "answer; they are claimed again once their lease runs out",
            str(error) or "no answer",
        )
        return
    if released:
        logger.info("jobs handed back at shutdown: %s", ", ".join(released))


async def prepare_processes(settings: Settings, url: str) -> WorkerProcesses:
    """What `serve --processes N` does once before its web processes start: the start-up
    maintenance and the profiling workers, which each of N processes must not repeat."""
    async with hub_services(settings, url, Metrics(), maintenance=True) as services:
        if services.orphans is not None:
            await services.orphans  # before these services close
        return await start_workers(settings, services.tokens)


async def hand_back_jobs(settings: Settings, url: str, stopped: list[str]) -> None:
    """After `serve --processes N` stopped its web processes and then its workers: the
    jobs those workers could not hand back themselves (no web process answered)."""

    async def hand_back() -> None:
        async with hub_services(settings, url, Metrics(), maintenance=False) as services:
            await release_stopped(services.jobs, stopped)

    try:
        # Opening the services reads the database too: bounded, as release_stopped is.
        await asyncio.wait_for(hand_back(), HAND_BACK_TIMEOUT_S * 2)
    except (PyMongoError, TimeoutError) as error:
        logger.warning(
            "could not hand back the running jobs at shutdown (%s): the database does not "
            "answer; they are claimed again once their lease runs out",
            str(error) or "no answer",
        )
