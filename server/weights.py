"""Weight stores: weight bytes addressed by their sha256, written in chunks.

A weight goes in two steps so that a crash never leaves a model pointing at half a
file: ``stage`` streams the upload aside while hashing it, ``commit`` makes it
addressable by its hash. Client file names never reach a file-system path.

Two stores share this interface: files under the data directory (the default with
the embedded database) and GridFS (the default with an external MongoDB, so that
every server and worker sees the same bytes). BENCHMARKS.md compares them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator
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
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
STAGING_PREFIX = "staging:"
GRIDFS_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class StagedWeight:
    """Bytes written aside, not yet addressable: commit or discard them."""

    sha256: str
    size: int
    token: Any


class WeightStore(Protocol):
    async def stage(self, source: WeightSource) -> StagedWeight: ...

    async def commit(self, staged: StagedWeight) -> None: ...

    async def discard(self, staged: StagedWeight) -> None: ...

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
    """Content-addressed files ``<root>/blobs/ab/abcdef…``, staged in ``<root>/staging``."""

    def __init__(self, root: Path) -> None:
        self.blobs = root / "blobs"
        self.staging = root / "staging"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)

    def blob_path(self, sha256: str) -> Path:
        if not SHA256_HEX.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.blobs / sha256[:2] / sha256

    async def stage(self, source: WeightSource) -> StagedWeight:
        path = self.staging / uuid.uuid4().hex
        hasher = hashlib.sha256()
        size = 0
        file = await asyncio.to_thread(path.open, "wb")
        try:
            while chunk := await source.read(CHUNK_SIZE):
                size += len(chunk)
                await asyncio.to_thread(_hash_and_write, hasher, file, chunk)
            await asyncio.to_thread(_flush_to_disk, file)
        except BaseException:
            await asyncio.to_thread(file.close)
            path.unlink(missing_ok=True)
            raise
        await asyncio.to_thread(file.close)
        return StagedWeight(sha256=hasher.hexdigest(), size=size, token=path)

    async def commit(self, staged: StagedWeight) -> None:
        target = self.blob_path(staged.sha256)
        if target.exists():
            staged.token.unlink(missing_ok=True)
            return
        target.parent.mkdir(exist_ok=True)
        os.replace(staged.token, target)

    async def discard(self, staged: StagedWeight) -> None:
        staged.token.unlink(missing_ok=True)

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
        # One server owns a data directory (the embedded database locks it), so
        # every unreferenced blob at start-up is an orphan.
        return {path.name for path in self.blobs.glob("??/*") if SHA256_HEX.match(path.name)}

    async def clear_staging(self) -> None:
        for path in self.staging.iterdir():
            path.unlink(missing_ok=True)


def _hash_and_write(hasher: Any, file: BinaryIO, chunk: bytes) -> None:
    hasher.update(chunk)
    file.write(chunk)


def _flush_to_disk(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


class GridFSWeightStore:
    """GridFS files named by their sha256; uploads staged under a ``staging:`` name."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.bucket = AsyncGridFSBucket(
            db, bucket_name=WEIGHTS_BUCKET, chunk_size_bytes=CHUNK_SIZE // 4
        )
        self.files = db[f"{WEIGHTS_BUCKET}.files"]
        self.chunks = db[f"{WEIGHTS_BUCKET}.chunks"]

    async def stage(self, source: WeightSource) -> StagedWeight:
        hasher = hashlib.sha256()
        size = 0
        upload = self.bucket.open_upload_stream(f"{STAGING_PREFIX}{uuid.uuid4().hex}")
        try:
            while chunk := await source.read(CHUNK_SIZE):
                size += len(chunk)
                hasher.update(chunk)
                await upload.write(chunk)
            await upload.close()
        except BaseException:
            await upload.abort()
            raise
        return StagedWeight(sha256=hasher.hexdigest(), size=size, token=upload._id)

    async def commit(self, staged: StagedWeight) -> None:
        if await self.files.find_one({"filename": staged.sha256}, {"_id": 1}):
            await self.bucket.delete(staged.token)
            return
        await self.bucket.rename(staged.token, staged.sha256)

    async def discard(self, staged: StagedWeight) -> None:
        if await self.files.find_one({"_id": staged.token}, {"_id": 1}):
            await self.bucket.delete(staged.token)

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
        cutoff = ObjectId.from_datetime(datetime.now(UTC) - GRIDFS_GRACE)
        staged = {"filename": {"$regex": f"^{STAGING_PREFIX}"}, "_id": {"$lt": cutoff}}
        async for stored in self.files.find(staged, {"_id": 1}):
            await self.bucket.delete(stored["_id"])
        # Chunks of uploads cut off before their file document was written.
        chunk_owners = await self.chunks.distinct("files_id", {"files_id": {"$lt": cutoff}})
        known = set(await self.files.distinct("_id", {"_id": {"$in": chunk_owners}}))
        abandoned = [owner for owner in chunk_owners if owner not in known]
        if abandoned:
            await self.chunks.delete_many({"files_id": {"$in": abandoned}})
