"""The embedded database: SecantusDB run as a child process with its data on disk.

SecantusDB (PyPI ``secantusdb``, GPL-2.0, beta) speaks the MongoDB wire protocol
over WiredTiger. It is started as a separate process and never imported here, so
the package stays usable without it. Production data belongs in MongoDB.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

logger = logging.getLogger("modelci.embedded")

START_TIMEOUT_S = 60.0
PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 15.0
LOCK_RETRY_S = 0.5


class EmbeddedDatabaseError(RuntimeError):
    pass


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

    def __init__(self, storage_dir: Path, host: str = "127.0.0.1", port: int | None = None):
        self.storage_dir = storage_dir
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

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
        while True:
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log:
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
                self.wait_until_ready(deadline - time.monotonic())
                break
            except EmbeddedDatabaseError:
                # The database of a server that just died may still be shutting down
                # and holding its lock: wait for it rather than fail the restart.
                if not self.locked_by_another(log_start) or time.monotonic() > deadline:
                    raise
                logger.info("the data is still locked by a database shutting down; waiting")
                time.sleep(LOCK_RETRY_S)
        # Lets `modelci token …` reach this database while the server holds it.
        self.url_path.write_text(self.url)
        return self.url

    def wait_until_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        client: MongoClient[dict[str, Any]]
        with MongoClient(self.url, serverSelectionTimeoutMS=250, connectTimeoutMS=250) as client:
            while True:
                if self.process.poll() is not None:
                    raise EmbeddedDatabaseError(
                        f"the embedded database exited with code {self.process.returncode} "
                        f"(is another server using {self.storage_dir}?):\n{self.log_tail()}"
                    )
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    if time.monotonic() > deadline:
                        self.stop()
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

    def stop(self) -> None:
        self.url_path.unlink(missing_ok=True)
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("embedded database did not stop in time; killing it")
            process.kill()
            process.wait()

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
