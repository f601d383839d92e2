"""The embedded database: SecantusDB run as a child process with its data on disk.

SecantusDB (PyPI ``secantusdb``, GPL-2.0, beta) speaks the MongoDB wire protocol
over WiredTiger. It is started as a separate process and never imported here, so
the package stays usable without it. Production data belongs in MongoDB.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

logger = logging.getLogger("modelci.embedded")

START_TIMEOUT_S = 60.0
PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 15.0
LOCK_RETRY_S = 0.5
# A database that died is started again this many times in a row before `serve` gives
# up and exits, so that a supervisor of its own restarts the whole hub.
RESTART_ATTEMPTS = 5
RESTART_BACKOFF_S = 1.0


class EmbeddedDatabaseError(RuntimeError):
    pass


class DataDirInUse(EmbeddedDatabaseError):
    """Another hub serves this data directory: waiting would not help."""


# What a supervised database in this process is going through while it does not answer
# (read by /readyz, which otherwise could only say that the database is silent).
database_trouble: str | None = None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stop_with_parent() -> None:
    """In the child, before exec: ask Linux to kill it when its parent dies (even by kill -9).

    SIGKILL, not SIGTERM: SecantusDB's SIGTERM handler can hang once its clients have
    vanished, and a database left running keeps its data locked against a restart.
    WiredTiger's log makes the abrupt stop safe for what was written.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def url_file(storage_dir: Path) -> Path:
    return storage_dir.parent / f"{storage_dir.name}.url"


def holder_file(storage_dir: Path) -> Path:
    """Who holds the data: locked (``flock``) by the process that runs its database for as
    long as it runs it, and saying which process that is and what it serves. The kernel
    drops the lock when the process dies, even by kill -9, so it is never stale."""
    return storage_dir.parent / f"{storage_dir.name}.holder"


def read_holder(handle: TextIO) -> dict[str, Any]:
    handle.seek(0)
    try:
        found = json.loads(handle.read() or "{}")
    except ValueError:  # caught half-written
        return {}
    return found if isinstance(found, dict) else {}


def holder_text(holder: dict[str, Any]) -> str:
    pid = f"pid {holder['pid']}" if holder.get("pid") else ""
    if holder.get("serving"):
        return f"another hub ({', '.join(filter(None, [pid, 'serving ' + holder['serving']]))})"
    what = str(holder.get("holder") or "another modelci command")
    return f"{what} ({pid})" if pid else what


def exit_text(code: int) -> str:
    if code >= 0:
        return f"status {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def running_database_url(storage_dir: Path) -> str | None:
    """The address of the embedded database a server runs on this data, if it answers."""
    path = url_file(storage_dir)
    if not path.exists():
        return None
    url = path.read_text().strip()
    client: MongoClient[dict[str, Any]]
    with MongoClient(url, serverSelectionTimeoutMS=1000) as client:
        try:
            client.admin.command("ping")
        except PyMongoError:
            return None
    return url


async def is_embedded_database(client: AsyncMongoClient[dict[str, Any]]) -> bool:
    """Whether ``client`` talks to SecantusDB (its ``buildInfo`` says so), whose way of
    answering a sorted, limited query needs its own listing strategy (``listing.py``)."""
    build = await client.admin.command("buildInfo")
    return "secantusVersion" in build


class EmbeddedDatabase:
    """``with EmbeddedDatabase(path) as db: use(db.url)``: started, answering, then stopped."""

    def __init__(
        self,
        storage_dir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        holder: str = "a modelci command",
        serving: str | None = None,
    ):
        self.storage_dir = storage_dir
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        # Who we are, for another process that finds the data held (``holder_file``);
        # ``serving``: the URL of the hub this database serves, which refuses at once.
        self.holder = holder
        self.serving = serving
        self.held: TextIO | None = None
        self.guard = threading.Lock()  # between a restart and stop()
        self.stopping = threading.Event()
        self.supervisor: threading.Thread | None = None
        self.failure: str | None = None  # why a supervised database was given up on

    @property
    def url(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def url_path(self) -> Path:
        return url_file(self.storage_dir)

    @property
    def log_path(self) -> Path:
        return self.storage_dir.parent / f"{self.storage_dir.name}.log"

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        if importlib.util.find_spec("secantus") is None:
            raise EmbeddedDatabaseError(
                "the embedded database is not installed: pip install 'modelci[embedded]', "
                "or point MODELCI_MONGODB_URL at a MongoDB server"
            )
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.stopping.clear()
        self.hold(timeout)
        try:
            self.launch(timeout)
        except BaseException:
            self.release()
            raise
        # Lets `modelci token …` reach this database while the server holds it.
        self.url_path.write_text(self.url)
        return self.url

    def hold(self, timeout: float) -> None:
        """Take the data directory, or say at once who serves it; a command that holds it
        briefly (`modelci token`, `import`) is waited for, up to ``timeout``."""
        handle = holder_file(self.storage_dir).open("a+")
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                other = read_holder(handle)
            folder = self.storage_dir.parent
            if other.get("serving") or time.monotonic() > deadline:
                handle.close()
                raise DataDirInUse(
                    f"{folder} is in use by {holder_text(other)}: stop it first, or give "
                    "this one another --data-dir"
                )
            if not waiting:
                logger.info("waiting for %s to release %s", holder_text(other), folder)
                waiting = True
            time.sleep(LOCK_RETRY_S)
        handle.seek(0)
        handle.truncate()
        record = {"pid": os.getpid(), "holder": self.holder, "serving": self.serving}
        handle.write(json.dumps(record))
        handle.flush()
        self.held = handle

    def release(self) -> None:
        handle, self.held = self.held, None
        if handle is not None:
            handle.truncate(0)
            handle.close()  # and with it the lock

    def launch(self, timeout: float) -> None:
        """The database process started on this port and answering; a database shutting
        down that still holds the files (its server just died) is waited for."""
        command = [
            sys.executable,
            "-P",  # not the current folder first on the import path (see workers.py)
            "-m",
            "secantus",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage_dir),
            "--log-level",
            "WARNING",
        ]
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.guard, self.log_path.open("ab") as log:
                if self.stopping.is_set():
                    raise EmbeddedDatabaseError("the embedded database is stopping")
                self.process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=stop_with_parent if sys.platform == "linux" else None,
                    # Out of the terminal's process group: Ctrl+C stops the server, which
                    # stops the database after the app. Killed with the group, the database
                    # went first and the app's shutdown waited 30 s for it to answer.
                    start_new_session=True,
                )
            logger.info(
                "embedded database starting on port %d, data in %s", self.port, self.storage_dir
            )
            try:
                self.wait_until_ready(deadline, timeout)
                return
            except EmbeddedDatabaseError:
                # The database of a server that just died may still be shutting down
                # and holding its files: wait for it rather than fail the restart.
                if not self.locked_by_another(log_start) or self.stopping.is_set():
                    raise
                if time.monotonic() > deadline:
                    raise EmbeddedDatabaseError(
                        f"the database files in {self.storage_dir} were still held by another "
                        f"process after {timeout:.0f} s (a database started outside modelci?); "
                        f"its log: {self.log_path}"
                    ) from None
                if not waiting:
                    logger.info(
                        "the database files are still held by a database shutting down; waiting"
                    )
                    waiting = True
                time.sleep(LOCK_RETRY_S)

    def wait_until_ready(self, deadline: float, timeout: float) -> None:
        process = self.process  # stop() may take it from another thread meanwhile
        assert process is not None
        client: MongoClient[dict[str, Any]]
        with MongoClient(self.url, serverSelectionTimeoutMS=250, connectTimeoutMS=250) as client:
            while True:
                if process.poll() is not None:
                    tail = self.log_tail()
                    raise EmbeddedDatabaseError(
                        f"the embedded database exited with code {process.returncode}"
                        + (f":\n{tail}" if tail else "")
                    )
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    if time.monotonic() > deadline:
                        self.kill_process()
                        raise EmbeddedDatabaseError(
                            f"the embedded database did not answer within {timeout:.0f} s:\n"
                            f"{self.log_tail()}"
                        ) from None

    def locked_by_another(self, log_start: int) -> bool:
        with self.log_path.open("rb") as log:
            log.seek(log_start)
            return b"already being managed by another process" in log.read()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def supervise(self, give_up: Callable[[str], None]) -> None:
        """Start the database again whenever it dies, as `serve` does for its workers:
        what it acknowledged is in its journal, and the hub's clients reconnect to the
        same port. After ``RESTART_ATTEMPTS`` failed starts, ``give_up(why)``."""
        # Its own thread, alive until the process it started is gone: Linux kills a
        # child with its parent *thread* (``stop_with_parent``).
        self.supervisor = threading.Thread(
            target=self.keep_alive, args=(give_up,), name="embedded-database", daemon=True
        )
        self.supervisor.start()

    def keep_alive(self, give_up: Callable[[str], None]) -> None:
        global database_trouble
        while not self.stopping.is_set():
            process = self.process
            if process is None:
                return
            code = process.wait()
            if self.stopping.is_set():
                return
            how = exit_text(code)
            database_trouble = f"the embedded database exited ({how}) and is being restarted"
            logger.error(
                "the embedded database exited (%s): starting it again on port %d; what it "
                "acknowledged is in its journal in %s",
                how,
                self.port,
                self.storage_dir,
            )
            for attempt in range(1, RESTART_ATTEMPTS + 1):
                try:
                    self.launch(START_TIMEOUT_S)
                    break
                except EmbeddedDatabaseError as error:
                    if self.stopping.is_set():
                        return
                    logger.error(
                        "the embedded database did not start again (try %d of %d): %s",
                        attempt,
                        RESTART_ATTEMPTS,
                        error,
                    )
                    if attempt < RESTART_ATTEMPTS and self.stopping.wait(
                        RESTART_BACKOFF_S * attempt
                    ):
                        return
            else:
                self.failure = (
                    f"the embedded database exited ({how}) and did not start again after "
                    f"{RESTART_ATTEMPTS} tries; its log: {self.log_path}"
                )
                database_trouble = self.failure
                give_up(self.failure)
                return
            database_trouble = None
            logger.warning("the embedded database is back on port %d", self.port)

    def kill_process(self) -> None:
        with self.guard:
            process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        with self.guard:
            self.stopping.set()
            process, self.process = self.process, None
        self.url_path.unlink(missing_ok=True)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning("embedded database did not stop in time; killing it")
                process.kill()
                process.wait()
        if self.supervisor is not None:
            self.supervisor.join(STOP_TIMEOUT_S)
        self.release()

    def __enter__(self) -> EmbeddedDatabase:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
