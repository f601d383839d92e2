"""Weight stores: weight bytes addressed by their sha256, written in chunks.

A weight goes in two steps so that a crash never leaves a model pointing at half a
file: ``Staging.write`` streams the upload into a local file while hashing it (where
it can be inspected), ``commit`` makes it addressable by its hash. Client file names
never reach a file-system path.

Two stores share this interface: files under the data directory (the default with
the embedded database) and GridFS (the default with an external MongoDB, so that
every server and worker sees the same bytes). BENCHMARKS.md compares them.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase

from modelci.schema.context import WeightSource

from .storage import WEIGHTS_BUCKET

CHUNK_SIZE = 1024 * 1024
MAX_IN_FLIGHT = 8  # pieces queued for the staging thread: 8 MiB at most
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
GRIDFS_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class StagedWeight:
    """Bytes written aside in a local file, not yet addressable: commit or discard them."""

    sha256: str
    size: int
    path: Path


class StagingWriter:
    """One staged file being written: hashed as it goes, in 1 MiB pieces.

    Hashing and writing run on a thread of the writer's own, in order, while the
    request keeps streaming in; at most ``MAX_IN_FLIGHT`` pieces wait for it, so memory
    stays bounded whatever the file's size.
    """

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path, self.file = path, file
        self.hasher = hashlib.sha256()
        self.size = 0
        self.pending = bytearray()
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="staging")
        self.in_flight: deque[asyncio.Future[None]] = deque()

    async def write(self, data: bytes) -> None:
        self.pending += data
        if len(self.pending) >= CHUNK_SIZE:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            chunk, self.pending = bytes(self.pending), bytearray()
            self.size += len(chunk)
            loop = asyncio.get_running_loop()
            self.in_flight.append(
                loop.run_in_executor(self.thread, _hash_and_write, self.hasher, self.file, chunk)
            )
        while len(self.in_flight) > MAX_IN_FLIGHT:
            await self.in_flight.popleft()

    async def drain(self) -> None:
        while self.in_flight:
            await self.in_flight.popleft()

    async def finish(self) -> StagedWeight:
        try:
            await self.flush()
            await self.drain()
            await asyncio.to_thread(_flush_to_disk, self.file)
        finally:
            await asyncio.to_thread(self.file.close)
            self.thread.shutdown()
        return StagedWeight(sha256=self.hasher.hexdigest(), size=self.size, path=self.path)

    async def abort(self) -> None:
        try:
            await self.drain()
        finally:
            await asyncio.to_thread(self.file.close)
            self.thread.shutdown()
            self.path.unlink(missing_ok=True)


class Staging:
    """Uploads land here first, hashed on the way, so they can be inspected before commit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    async def open_writer(self) -> StagingWriter:
        path = self.folder / uuid.uuid4().hex
        return StagingWriter(path, await asyncio.to_thread(path.open, "wb"))

    async def write(self, source: WeightSource) -> StagedWeight:
        writer = await self.open_writer()
        try:
            while chunk := await source.read(CHUNK_SIZE):
                await writer.write(chunk)
            return await writer.finish()
        except BaseException:
            await writer.abort()
            raise

    def clear(self) -> None:
        for path in self.folder.iterdir():
            path.unlink(missing_ok=True)


class ReferenceLock:
    """Held while weight bytes are committed or dropped together with the model documents
    that reference them, so that a delete never removes bytes a concurrent registration
    of the same content has just referenced: across this process's tasks (asyncio) and,
    given a lock file, across the server processes sharing a data directory (flock).
    """

    def __init__(self, lock_file: Path | None = None) -> None:
        self.tasks = asyncio.Lock()
        self.lock_file = lock_file
        self.fd: int | None = None

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        async with self.tasks:
            if self.lock_file is None:
                yield
                return
            if self.fd is None:
                self.fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            await asyncio.to_thread(fcntl.flock, self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)


class WeightStore(Protocol):
    staging: Staging
    references: ReferenceLock

    async def commit(self, staged: StagedWeight) -> None:
        """Make staged bytes addressable by their sha256 (the staged file goes away)."""
        ...

    def open_reader(self, sha256: str) -> AsyncIterator[bytes]: ...

    async def delete(self, sha256: str) -> None: ...

    async def collectable_hashes(self) -> set[str]:
        """Stored hashes old enough to be removed at start-up if no model references them."""
        ...

    async def clear_staging(self) -> None:
        """Remove what abandoned uploads (a crash, a cut connection) left behind."""
        ...


def display_filename(name: str | None) -> str:
    """A client's file name, kept only as metadata: last path part, printable, bounded."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()[:255]
    return cleaned or "weight"


class FileWeightStore:
    """Content-addressed files ``<root>/blobs/ab/abcdef…``."""

    def __init__(self, root: Path, staging: Staging) -> None:
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.staging = staging
        self.references = ReferenceLock(root / "references.lock")  # `serve --processes N`

    def blob_path(self, sha256: str) -> Path:
        if not SHA256_HEX.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.blobs / sha256[:2] / sha256

    async def commit(self, staged: StagedWeight) -> None:
        target = self.blob_path(staged.sha256)
        if target.exists():
            staged.path.unlink(missing_ok=True)
            return
        target.parent.mkdir(exist_ok=True)
        os.replace(staged.path, target)

    async def open_reader(self, sha256: str) -> AsyncIterator[bytes]:
        file = await asyncio.to_thread(self.blob_path(sha256).open, "rb")
        try:
            while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
                yield chunk
        finally:
            await asyncio.to_thread(file.close)

    async def delete(self, sha256: str) -> None:
        self.blob_path(sha256).unlink(missing_ok=True)

    async def collectable_hashes(self) -> set[str]:
        # One server owns a data directory (the embedded database locks it; its
        # processes share the reference lock), so every unreferenced blob at start-up
        # is an orphan.
        return {path.name for path in self.blobs.glob("??/*") if SHA256_HEX.match(path.name)}

    async def clear_staging(self) -> None:
        self.staging.clear()


def _hash_and_write(hasher: Any, file: BinaryIO, chunk: bytes) -> None:
    hasher.update(chunk)
    file.write(chunk)


def _flush_to_disk(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


class GridFSWeightStore:
    """GridFS files named by their sha256."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], staging: Staging) -> None:
        self.bucket = AsyncGridFSBucket(
            db, bucket_name=WEIGHTS_BUCKET, chunk_size_bytes=CHUNK_SIZE // 4
        )
        self.files = db[f"{WEIGHTS_BUCKET}.files"]
        self.chunks = db[f"{WEIGHTS_BUCKET}.chunks"]
        self.staging = staging
        # Within this process only: servers sharing a bucket can still race a delete of
        # bytes against a registration of the same bytes (README, Not yet).
        self.references = ReferenceLock()

    async def commit(self, staged: StagedWeight) -> None:
        try:
            if await self.files.find_one({"filename": staged.sha256}, {"_id": 1}):
                return
            upload = self.bucket.open_upload_stream(staged.sha256)
            file = await asyncio.to_thread(staged.path.open, "rb")
            try:
                while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
                    await upload.write(chunk)
                await upload.close()
            except BaseException:
                await upload.abort()
                raise
            finally:
                await asyncio.to_thread(file.close)
        finally:
            staged.path.unlink(missing_ok=True)

    async def open_reader(self, sha256: str) -> AsyncIterator[bytes]:
        download = await self.bucket.open_download_stream_by_name(sha256)
        try:
            while chunk := await download.readchunk():
                yield chunk
        finally:
            await download.close()

    async def delete(self, sha256: str) -> None:
        async for stored in self.files.find({"filename": sha256}, {"_id": 1}):
            await self.bucket.delete(stored["_id"])

    async def collectable_hashes(self) -> set[str]:
        # Several servers may share the bucket: spare what another one may be
        # registering right now.
        cutoff = datetime.now(UTC) - GRIDFS_GRACE
        names = await self.files.distinct("filename", {"uploadDate": {"$lt": cutoff}})
        return {name for name in names if SHA256_HEX.match(name)}

    async def clear_staging(self) -> None:
        self.staging.clear()
        # Chunks of uploads cut off before their file document was written.
        cutoff = ObjectId.from_datetime(datetime.now(UTC) - GRIDFS_GRACE)
        chunk_owners = await self.chunks.distinct("files_id", {"files_id": {"$lt": cutoff}})
        known = set(await self.files.distinct("_id", {"_id": {"$in": chunk_owners}}))
        abandoned = [owner for owner in chunk_owners if owner not in known]
        if abandoned:
            await self.chunks.delete_many({"files_id": {"$in": abandoned}})
