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
import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .storage import WEIGHT_LOCKS, WEIGHTS_BUCKET

CHUNK_SIZE = 1024 * 1024
PIECE_SIZE = 4 * 1024 * 1024  # what the staging thread hashes and writes at once
MAX_IN_FLIGHT = 4  # buffers per upload: 16 MiB at most
DIRECT_IO_ALIGNMENT = 4096  # direct I/O writes whole blocks from page-aligned memory
O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux; elsewhere plain writes
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
GRIDFS_GRACE = timedelta(hours=1)
LOCK_LEASE = timedelta(seconds=30)  # renewed every 10 s while held
LOCK_POLL_S = 0.05


@runtime_checkable
class ByteSource(Protocol):
    """Bytes from elsewhere (an archive member, a test's buffer), read in chunks into
    staging; uploads over HTTP are streamed there by the multipart parser instead."""

    async def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class StagedWeight:
    """Bytes written aside in a local file, not yet addressable: commit or discard them."""

    sha256: str
    size: int
    path: Path

    def discard(self) -> None:
        """Remove the staged file; a no-op once it was committed (it has left staging)."""
        self.path.unlink(missing_ok=True)


class StagingWriter:
    """One staged file being written: hashed as it goes, in pieces of ``PIECE_SIZE``.

    Incoming bytes are copied once, into page-aligned buffers reused for the whole
    upload. Two threads of the writer's own take each full buffer while the request
    keeps streaming in: one hashes the pieces in order, the other writes them in order
    with direct I/O (``O_DIRECT``: from the buffer to the disk, not through the page
    cache; plain writes where the file system refuses it). At most ``MAX_IN_FLIGHT``
    buffers exist, so memory stays bounded whatever the file's size. A weight of one
    piece or less (most uploads) starts no threads: it is hashed, written and synced in
    one trip to a thread when it ends.
    """

    def __init__(self, path: Path, fd: int, direct: bool) -> None:
        self.path, self.fd, self.direct = path, fd, direct
        self.hasher = hashlib.sha256()
        self.size = 0
        self.buffers: list[mmap.mmap] = []  # every buffer made, to close at the end
        self.free: list[mmap.mmap] = []
        self.current: mmap.mmap | None = None
        self.filled = 0
        # Started with the first full piece: a weight that fits one piece is hashed,
        # written and synced in one trip to a thread instead (``finish``).
        self.threads: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None
        self.in_flight: deque[asyncio.Task[mmap.mmap]] = deque()

    async def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self.current is None:
                self.current = await self.free_buffer()
            taken = min(len(view), PIECE_SIZE - self.filled)
            self.current[self.filled : self.filled + taken] = view[:taken]
            self.filled += taken
            view = view[taken:]
            if self.filled == PIECE_SIZE:
                self.submit()

    async def free_buffer(self) -> mmap.mmap:
        if self.free:
            return self.free.pop()
        if len(self.buffers) < MAX_IN_FLIGHT:
            self.buffers.append(mmap.mmap(-1, PIECE_SIZE))  # anonymous: page-aligned
            return self.buffers[-1]
        return await self.in_flight.popleft()

    def submit(self) -> None:
        """Hand the current buffer to the hashing and the writing thread."""
        if self.current is None or not self.filled:
            return
        buffer, length = self.current, self.filled
        self.size += length
        if self.threads is None:
            self.threads = (
                ThreadPoolExecutor(1, thread_name_prefix="staging-hash"),
                ThreadPoolExecutor(1, thread_name_prefix="staging-write"),
            )
        hashing, writing = self.threads
        loop = asyncio.get_running_loop()
        hashed = loop.run_in_executor(hashing, self.hash_piece, buffer, length)
        written = loop.run_in_executor(writing, self.write_piece, buffer, length)
        self.in_flight.append(asyncio.create_task(both_done(hashed, written, buffer)))
        self.current, self.filled = None, 0

    def hash_piece(self, buffer: mmap.mmap, length: int) -> None:
        self.hasher.update(memoryview(buffer)[:length])

    def write_piece(self, buffer: mmap.mmap, length: int) -> None:
        piece = memoryview(buffer)[:length]
        if self.direct:
            # Direct I/O writes whole blocks only; the rest (the last piece's tail, or
            # all of it where the file system refuses) goes as plain writes.
            piece = piece[write_direct(self.fd, piece[: length - length % DIRECT_IO_ALIGNMENT]) :]
            if piece:
                flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
                fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~O_DIRECT)
                self.direct = False
        while piece:
            piece = piece[os.write(self.fd, piece) :]

    async def drain(self) -> None:
        while self.in_flight:
            self.free.append(await self.in_flight.popleft())

    async def finish(self) -> StagedWeight:
        try:
            if self.threads is None:
                await asyncio.to_thread(self.finish_in_one_piece)
            else:
                self.submit()
                await self.drain()
                await asyncio.to_thread(os.fsync, self.fd)
        finally:
            await self.close()
        return StagedWeight(sha256=self.hasher.hexdigest(), size=self.size, path=self.path)

    async def abort(self) -> None:
        try:
            await asyncio.gather(*self.in_flight, return_exceptions=True)
        finally:
            await self.close()
            self.path.unlink(missing_ok=True)

    def finish_in_one_piece(self) -> None:
        """The whole weight, never more than one piece, hashed, written and synced."""
        if self.current is not None and self.filled:
            self.size += self.filled
            self.hash_piece(self.current, self.filled)
            self.write_piece(self.current, self.filled)
        os.fsync(self.fd)

    async def close(self) -> None:
        await asyncio.to_thread(os.close, self.fd)
        for threads in self.threads or ():
            threads.shutdown()
        for buffer in self.buffers:
            with contextlib.suppress(BufferError):  # a failed write's traceback holds a view
                buffer.close()


async def both_done(
    hashed: asyncio.Future[None], written: asyncio.Future[None], buffer: mmap.mmap
) -> mmap.mmap:
    """The buffer, free again once its piece is both hashed and written."""
    await asyncio.gather(hashed, written)
    return buffer


def sync_directory(path: Path) -> None:
    """Make the entries of a directory (a rename into it, say) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_direct(fd: int, data: memoryview) -> int:
    """Bytes written with direct I/O before the end or the file system's refusal."""
    written = 0
    while written < len(data):
        try:
            written += os.write(fd, data[written:])
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            break
    return written


def open_for_staging(path: Path) -> tuple[int, bool]:
    """A new file's descriptor, for direct I/O where the file system allows it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    if O_DIRECT:
        try:
            return os.open(path, flags | O_DIRECT, 0o600), True
        except OSError as error:
            if error.errno != errno.EINVAL:  # tmpfs, say
                raise
    return os.open(path, flags, 0o600), False


class Staging:
    """Uploads land here first, hashed on the way, so they can be inspected before commit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    async def open_writer(self) -> StagingWriter:
        path = self.folder / uuid.uuid4().hex
        fd, direct = await asyncio.to_thread(open_for_staging, path)
        return StagingWriter(path, fd, direct)

    async def write(self, source: ByteSource) -> StagedWeight:
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


class ReferenceLocks(Protocol):
    def held(self, sha256: str) -> AbstractAsyncContextManager[None]:
        """Held while the bytes of ``sha256`` are committed or dropped together with the
        model documents that reference them, so that a delete never removes bytes a
        concurrent registration of the same content has just referenced."""
        ...


class FileReferenceLock:
    """One lock for a data directory: across this process's tasks (asyncio) and across
    the server processes sharing the directory (flock on a lock file)."""

    def __init__(self, lock_file: Path) -> None:
        self.tasks = asyncio.Lock()
        self.lock_file = lock_file
        self.fd: int | None = None

    @asynccontextmanager
    async def held(self, sha256: str) -> AsyncIterator[None]:
        async with self.tasks:
            if self.fd is None:
                self.fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            await asyncio.to_thread(fcntl.flock, self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)


class LeasedReferenceLocks:
    """A lock per hash for every server on one database (GridFS, any number of replicas):
    a document per held hash naming its holder, under a lease renewed while held and
    taken over once it has run out (a holder that died)."""

    def __init__(self, locks: AsyncCollection[dict[str, Any]]) -> None:
        self.locks = locks

    @asynccontextmanager
    async def held(self, sha256: str) -> AsyncIterator[None]:
        holder = uuid.uuid4().hex
        while True:
            if await self.take(sha256, holder):
                break
            await asyncio.sleep(LOCK_POLL_S)  # another server holds it: wait our turn
        renewing = asyncio.create_task(self.renew(sha256, holder))
        try:
            yield
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)  # a failed renewal too
            await self.locks.delete_one({"_id": sha256, "holder": holder})

    async def take(self, sha256: str, holder: str) -> bool:
        now = datetime.now(UTC)
        try:  # a free hash has no document: the upsert inserts one; a held one, unexpired,
            # makes the upsert collide with its _id
            await self.locks.update_one(
                {"_id": sha256, "until": {"$lt": now}},
                {"$set": {"holder": holder, "until": now + LOCK_LEASE}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    async def renew(self, sha256: str, holder: str) -> None:
        while True:
            await asyncio.sleep(LOCK_LEASE.total_seconds() / 3)
            await self.locks.update_one(
                {"_id": sha256, "holder": holder},
                {"$set": {"until": datetime.now(UTC) + LOCK_LEASE}},
            )


class WeightStore(Protocol):
    staging: Staging
    references: ReferenceLocks

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
        self.references: ReferenceLocks = FileReferenceLock(root / "references.lock")

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
        # The bytes were synced when staged; sync the rename too, so that the model
        # document written next (journaled before it is acknowledged) never points
        # at a file a crash took back.
        await asyncio.to_thread(sync_directory, target.parent)

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


class GridFSWeightStore:
    """GridFS files named by their sha256."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], staging: Staging) -> None:
        self.bucket = AsyncGridFSBucket(
            db, bucket_name=WEIGHTS_BUCKET, chunk_size_bytes=CHUNK_SIZE // 4
        )
        self.files = db[f"{WEIGHTS_BUCKET}.files"]
        self.chunks = db[f"{WEIGHTS_BUCKET}.chunks"]
        self.staging = staging
        self.references: ReferenceLocks = LeasedReferenceLocks(db[WEIGHT_LOCKS])

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
