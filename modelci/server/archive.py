"""Export a hub into one archive, and import such an archive into any hub.

The archive is a plain tar file, members in this order:

- ``manifest.json``: the format and its version, and the size and sha256 of every
  other member (the document files and each weight);
- ``models.jsonl``: every model document, one a line, as MongoDB extended JSON (relaxed),
  so ids, lineage (``parent_model_id``), profiles and free metadata (metrics, params,
  tags, description, source, who registered it; since format version 3) come back
  exactly as stored;
- ``jobs.jsonl``: the profiling and conversion jobs that had finished at export time;
- ``aliases.jsonl``: every alias and the model it names (since format version 2; an
  archive of version 1 has none and is still read);
- ``weights/<sha256>``: each distinct weight's bytes, once however many models share them.

API tokens are never exported: secrets stay with the hub that issued them. Devices are
not either: workers report theirs again when they connect to the new hub.

An import is an upload door like registration, and checks everything before it writes
anything: the manifest, each document against the domain model (and that the database
can store it; free metadata within the bounds a registration has), each member's size
against the manifest and the hub's upload cap before its bytes are read, each weight's
bytes against its sha256, each weight as registration inspects it (the same inspector,
with the hub's settings: the same refusals, the same ``--allow-pickle`` rule), and the
target hub for models and aliases that would collide (an alias already naming another
model). Only finished jobs are imported: a queued or running job in an archive (never
one ``export`` wrote) is left out and counted, so nothing an archive holds is ever
claimed by a worker. Only then are the bytes committed and the documents written,
parents before their variants, each model after its bytes, aliases after the models
they name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import IO, Any, Literal

import bson
from bson import ObjectId, json_util
from bson.errors import BSONError
from bson.json_util import RELAXED_JSON_OPTIONS
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

import modelci
from modelci.core.domain import (
    FINISHED_JOB_STATUSES,
    MLModel,
    ModelAlias,
    ProfilingJob,
    WeightFormat,
)
from modelci.core.errors import BadUserInput
from modelci.core.usecases import COMPILED_PACKAGE, checked_alias

from .aliases import ALIASES, alias_from_document
from .inspection import ModelInspector
from .intake import WeightIntake
from .job_queue import job_from_document
from .registry import describe_key
from .services import model_inspector, prepared_database, weight_store
from .settings import Settings
from .storage import JOBS, MODELS, model_from_document, to_bson
from .weights import CHUNK_SIZE, SHA256_HEX, StagedWeight, WeightStore

ARCHIVE_FORMAT = "modelci-hub-archive"
# Version 3: models carry free metadata (params, tags, description, source, created_by)
# and metrics of any name, which a hub reading version 2 would refuse.
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # version 1: no aliases.jsonl
MANIFEST = "manifest.json"
MODELS_FILE = "models.jsonl"
JOBS_FILE = "jobs.jsonl"
ALIASES_FILE = "aliases.jsonl"
WEIGHTS_PREFIX = "weights/"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # some 600 000 weights listed
# One line of a document file: the JSON of the largest document MongoDB stores (16 MiB
# of BSON) is well within it, and each line is read whole into memory.
MAX_DOCUMENT_LINE_BYTES = 64 * 1024 * 1024
MAX_BSON_DOCUMENT_BYTES = 16 * 1024 * 1024
LOOKUP_BATCH = 1000  # ids per query when checking the target hub
FINISHED = sorted(status.value for status in FINISHED_JOB_STATUSES)
READ_JSON = RELAXED_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=UTC)

Progress = Callable[[int, int], None]
"""Told (bytes done, bytes in all) as weight bytes go by."""


class ArchiveError(Exception):
    """The archive is not one this hub can import (corrupt, truncated, tampered with)."""


class ImportConflict(Exception):
    """The archive is sound but clashes with what the target hub already holds."""


class ExportError(Exception):
    """The hub could not be exported as it is (a weight's bytes missing or changed)."""


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256_HEX.pattern)


class DocumentFile(Member):
    count: int = Field(ge=0)


class WeightEntry(Member):
    pass


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["modelci-hub-archive"]
    format_version: int
    created: str
    exported_by: str
    models: DocumentFile
    jobs: DocumentFile
    aliases: DocumentFile | None = None  # format version 1 had none
    weights: list[WeightEntry]
    left_out: dict[str, str | int]


@dataclass
class ExportSummary:
    models: int = 0
    jobs: int = 0
    weights: int = 0
    bytes: int = 0
    jobs_left_out: int = 0  # unfinished, or of a model that no longer exists
    aliases: int = 0
    aliases_left_out: int = 0  # naming a model that no longer exists
    sources_missing: list[str] = field(default_factory=list)  # variants exported unlinked


@dataclass
class ImportSummary:
    models: int = 0  # written
    models_skipped: int = 0  # already there, identical
    jobs: int = 0
    jobs_skipped: int = 0
    jobs_unfinished: int = 0  # queued or running in the archive: left out
    weights: int = 0  # weights in the archive, all verified
    bytes: int = 0
    weights_committed: int = 0  # of those, stored for the models written
    aliases: int = 0
    aliases_skipped: int = 0  # already there, naming the same model


# Export


async def export_hub(
    db: AsyncDatabase[dict[str, Any]],
    weights: WeightStore,
    path: Path,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write every model, its weight bytes and the finished jobs into the archive ``path``.

    The archive appears under its name only once complete (written aside, then renamed),
    so a failed export never leaves a plausible-looking half archive.
    """
    summary = ExportSummary()
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    with (
        tempfile.TemporaryFile(dir=path.parent) as models_file,
        tempfile.TemporaryFile(dir=path.parent) as jobs_file,
        tempfile.TemporaryFile(dir=path.parent) as aliases_file,
    ):
        sizes, model_ids = await spool_models(db, models_file, summary)
        await spool_jobs(db, jobs_file, model_ids, summary)
        await spool_aliases(db, aliases_file, model_ids, summary)
        entries = [WeightEntry(sha256=sha256, size=size) for sha256, size in sorted(sizes.items())]
        summary.weights, summary.bytes = len(entries), sum(sizes.values())
        manifest = Manifest(
            format=ARCHIVE_FORMAT,
            format_version=FORMAT_VERSION,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            exported_by=f"modelci {modelci.__version__}",
            models=await described(models_file, summary.models),
            jobs=await described(jobs_file, summary.jobs),
            aliases=await described(aliases_file, summary.aliases),
            weights=entries,
            left_out={
                "api_tokens": "never exported: secrets stay with their hub",
                "devices": "reported again by workers",
                "unfinished_or_orphaned_jobs": summary.jobs_left_out,
                "aliases_of_missing_models": summary.aliases_left_out,
            },
        )
        try:
            output = await asyncio.to_thread(partial.open, "wb")
            try:
                writer = TarWriter(output)
                await writer.add_bytes(MANIFEST, manifest.model_dump_json(indent=1).encode())
                await writer.add_file(MODELS_FILE, models_file)
                await writer.add_file(JOBS_FILE, jobs_file)
                await writer.add_file(ALIASES_FILE, aliases_file)
                done = 0
                for entry in entries:
                    await writer.add_weight(entry, weights)
                    done += entry.size
                    if progress:
                        progress(done, summary.bytes)
                await writer.close()
                await asyncio.to_thread(os.fsync, output.fileno())
            finally:
                await asyncio.to_thread(output.close)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return summary


async def spool_models(
    db: AsyncDatabase[dict[str, Any]], file: IO[bytes], summary: ExportSummary
) -> tuple[dict[str, int], set[str]]:
    """Every model document into ``file``; the weights they reference, and their ids."""
    sizes: dict[str, int] = {}
    ids: set[str] = set()
    lines: list[bytes] = []
    # A variant whose source is gone (left by a delete racing its registration on an older
    # hub) goes without its link, else no hub could import the archive.
    present = {str(each["_id"]) async for each in db[MODELS].find({}, {"_id": 1})}
    async for document in db[MODELS].find().sort("_id", 1):
        parent = document.get("parent_model_id")
        if parent is not None and parent not in present:
            document["parent_model_id"] = None
            summary.sources_missing.append(str(document["_id"]))
        try:
            model = model_from_document(document)
        except ValidationError as error:
            raise ExportError(
                f"model {document.get('_id')} does not validate, so no hub could import it: "
                f"{brief(error)}"
            ) from None
        sizes[model.weight.sha256] = model.weight.size
        ids.add(model.id)
        lines.append(json_util.dumps(document, json_options=RELAXED_JSON_OPTIONS).encode() + b"\n")
        summary.models += 1
        if len(lines) >= LOOKUP_BATCH:
            await asyncio.to_thread(file.writelines, lines)
            lines = []
    await asyncio.to_thread(file.writelines, lines)
    return sizes, ids


async def spool_jobs(
    db: AsyncDatabase[dict[str, Any]], file: IO[bytes], model_ids: set[str], summary: ExportSummary
) -> None:
    """The finished jobs of the exported models into ``file``.

    A queued or running job is left out: its lease and worker belong to this hub, and
    the new hub's user decides whether to queue it again.
    """
    lines: list[bytes] = []
    async for document in db[JOBS].find().sort("_id", 1):
        if document.get("status") not in FINISHED or document.get("model_id") not in model_ids:
            summary.jobs_left_out += 1
            continue
        try:
            job_from_document(document)
        except ValidationError as error:
            raise ExportError(
                f"profiling job {document['_id']} does not validate: {brief(error)}"
            ) from None
        lines.append(json_util.dumps(document, json_options=RELAXED_JSON_OPTIONS).encode() + b"\n")
        summary.jobs += 1
    await asyncio.to_thread(file.writelines, lines)


async def spool_aliases(
    db: AsyncDatabase[dict[str, Any]], file: IO[bytes], model_ids: set[str], summary: ExportSummary
) -> None:
    """The aliases of the exported models into ``file`` (one naming a model deleted while
    it was being moved is left out: no hub could resolve it)."""
    lines: list[bytes] = []
    async for document in db[ALIASES].find().sort("_id", 1):
        if document.get("model_id") not in model_ids:
            summary.aliases_left_out += 1
            continue
        try:
            alias_from_document(document)
        except (KeyError, ValidationError) as error:
            raise ExportError(f"alias {document.get('_id')!r} does not validate: {error}") from None
        lines.append(json_util.dumps(document, json_options=RELAXED_JSON_OPTIONS).encode() + b"\n")
        summary.aliases += 1
    await asyncio.to_thread(file.writelines, lines)


async def described(file: IO[bytes], count: int) -> DocumentFile:
    def digest() -> tuple[int, str]:
        file.seek(0)
        hasher = hashlib.sha256()
        while chunk := file.read(CHUNK_SIZE):
            hasher.update(chunk)
        return file.tell(), hasher.hexdigest()

    size, sha256 = await asyncio.to_thread(digest)
    return DocumentFile(size=size, sha256=sha256, count=count)


class TarWriter:
    """A tar file written member by member, each member's bytes streamed in chunks."""

    def __init__(self, output: IO[bytes]) -> None:
        self.output = output
        self.offset = 0

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self.output.write, data)
        self.offset += len(data)

    async def header(self, name: str, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, int(time.time())
        await self.write(info.tobuf(tarfile.PAX_FORMAT))

    async def pad(self) -> None:
        if remainder := self.offset % tarfile.BLOCKSIZE:
            await self.write(tarfile.NUL * (tarfile.BLOCKSIZE - remainder))

    async def add_bytes(self, name: str, data: bytes) -> None:
        await self.header(name, len(data))
        await self.write(data)
        await self.pad()

    async def add_file(self, name: str, file: IO[bytes]) -> None:
        size = await asyncio.to_thread(file.seek, 0, io.SEEK_END)
        await asyncio.to_thread(file.seek, 0)
        await self.header(name, size)
        while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
            await self.write(chunk)
        await self.pad()

    async def add_weight(self, entry: WeightEntry, weights: WeightStore) -> None:
        """The weight's bytes from the store, checked against its recorded size and sha256."""
        await self.header(f"{WEIGHTS_PREFIX}{entry.sha256}", entry.size)
        hasher, size = hashlib.sha256(), 0
        reader = weights.open_reader(entry.sha256)
        try:
            while size <= entry.size:
                try:
                    chunk = await anext(reader)
                except StopAsyncIteration:
                    break
                except Exception as error:  # a missing file, a missing GridFS file
                    raise ExportError(f"weight {entry.sha256}: cannot be read ({error})") from None
                size += len(chunk)
                if size <= entry.size:
                    hasher.update(chunk)
                    await self.write(chunk)
        finally:
            if isinstance(reader, AsyncGenerator):
                await reader.aclose()
        if size != entry.size or hasher.hexdigest() != entry.sha256:
            raise ExportError(
                f"weight {entry.sha256}: the stored bytes do not match their recorded size "
                f"({entry.size}) and sha256; this hub's weight store is damaged"
            )
        await self.pad()

    async def close(self) -> None:
        """Two zero blocks end the archive; the whole is padded to tar's record size."""
        await self.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        if remainder := self.offset % tarfile.RECORDSIZE:
            await self.write(tarfile.NUL * (tarfile.RECORDSIZE - remainder))


# Import


@dataclass
class ImportPlan:
    models: list[MLModel] = field(default_factory=list)  # to write, parents first
    jobs: list[ProfilingJob] = field(default_factory=list)
    aliases: list[ModelAlias] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    needed: set[str] = field(default_factory=set)  # weights the written models reference


async def import_hub(
    db: AsyncDatabase[dict[str, Any]],
    weights: WeightStore,
    path: Path,
    settings: Settings,
    progress: Progress | None = None,
) -> ImportSummary:
    """Load the archive ``path`` into the hub: all of it, or nothing (see the module's doc).

    ``settings``: the hub's, for what it accepts (pickles, the largest upload).
    ArchiveError: the archive is damaged, or a weight in it is one the hub refuses;
    ImportConflict: it clashes with this hub. Either way nothing was written. Models and
    jobs already there, identical, are skipped.
    """
    summary = ImportSummary()
    verified: list[StagedWeight] = []
    inspector = model_inspector(settings)
    try:
        async with ArchiveReader.opened(path) as archive:
            manifest = await archive.read_manifest()
            archive.check_sizes(manifest, settings.max_upload_bytes)
            models = await archive.read_models(manifest)
            model_ids = {model.id for model in models}
            jobs, summary.jobs_unfinished = await archive.read_jobs(manifest, model_ids)
            aliases = await archive.read_aliases(manifest, model_ids)
            plan = await plan_import(db, models, jobs, aliases)
            staged = await archive.read_weights(manifest, weights, plan.needed, progress)
            verified = list(staged.values())
        await inspect_weights(inspector, plan.models, staged)
        summary.weights = len(manifest.weights)
        summary.bytes = sum(entry.size for entry in manifest.weights)
        if plan.conflicts:
            raise ImportConflict(
                "the archive clashes with this hub; nothing was imported:\n  "
                + "\n  ".join(plan.conflicts)
            )
        await write_plan(db, weights, inspector, plan, staged, summary)
    finally:
        for item in verified:  # what was verified but not committed
            item.discard()
        inspector.close()
    summary.models_skipped = len(models) - summary.models
    summary.jobs_skipped = len(jobs) - summary.jobs
    summary.aliases_skipped = len(aliases) - summary.aliases
    return summary


class ArchiveReader:
    """The archive's members, read in order; every problem an ArchiveError."""

    def __init__(self, tar: tarfile.TarFile, size: int) -> None:
        self.tar = tar
        self.size = size  # of the archive file

    @classmethod
    @asynccontextmanager
    async def opened(cls, path: Path) -> AsyncIterator[ArchiveReader]:
        try:
            file = await asyncio.to_thread(BoundedReads, path)
        except FileNotFoundError:
            raise ArchiveError(f"{path}: no such file") from None
        except OSError as error:
            raise ArchiveError(f"{path}: not readable ({error})") from None
        try:
            size = (await asyncio.to_thread(os.fstat, file.fileno())).st_size
            with translated_read_errors():
                tar = await asyncio.to_thread(tarfile.open, fileobj=file, mode="r:")
            try:
                with translated_read_errors():
                    yield cls(tar, size)
            finally:
                await asyncio.to_thread(tar.close)
        finally:
            await asyncio.to_thread(file.close)

    def check_sizes(self, manifest: Manifest, max_weight_bytes: int) -> None:
        """Refuse, before any member is read, a weight larger than the hub takes as an
        upload, and members declaring more bytes than the archive file holds: with
        sparse members refused, that bounds what an import writes by the archive's size."""
        for entry in manifest.weights:
            if entry.size > max_weight_bytes:
                raise ArchiveError(
                    f"weight {entry.sha256}: {entry.size} bytes, more than this hub accepts "
                    f"for one weight ({max_weight_bytes} bytes, MODELCI_MAX_UPLOAD_BYTES)"
                )
        documents = [manifest.models, manifest.jobs, manifest.aliases]
        declared = sum(entry.size for entry in manifest.weights) + sum(
            described.size for described in documents if described is not None
        )
        if declared > self.size:
            raise ArchiveError(
                f"{MANIFEST}: its members add up to {declared} bytes, more than the archive's "
                f"{self.size} (truncated, or members stored sparse)"
            )

    async def next_member(self, expected: str) -> tarfile.TarInfo:
        member = await asyncio.to_thread(self.tar.next)
        if member is None:
            raise ArchiveError(f"{expected} is missing (a truncated archive?)")
        if member.name != expected:
            raise ArchiveError(f"{expected} is missing ({member.name!r} is in its place)")
        if not plain_file(member):
            raise ArchiveError(f"{expected} is not a plain file (sparse, a link or a device)")
        return member

    def open_member(self, member: tarfile.TarInfo) -> IO[bytes]:
        file = self.tar.extractfile(member)
        if file is None:
            raise ArchiveError(f"{member.name} has no content")
        return file

    async def read_manifest(self) -> Manifest:
        member = await self.next_member(MANIFEST)
        if member.size > MAX_MANIFEST_BYTES:
            raise ArchiveError(f"{MANIFEST}: {member.size} bytes, more than a manifest can be")
        raw = await asyncio.to_thread(read_whole, self.open_member(member))
        try:
            content = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise ArchiveError(f"{MANIFEST}: not JSON ({error})") from None
        except RecursionError:
            raise ArchiveError(f"{MANIFEST}: JSON nested too deep to be a manifest") from None
        if not isinstance(content, dict) or content.get("format") != ARCHIVE_FORMAT:
            raise ArchiveError(
                f"{MANIFEST}: not a ModelCI Hub archive (format is not {ARCHIVE_FORMAT!r})"
            )
        version = content.get("format_version")
        if version not in READABLE_VERSIONS:
            raise ArchiveError(
                f"{MANIFEST}: archive format version {version!r}; this hub "
                f"(modelci {modelci.__version__}) reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        try:
            manifest = Manifest.model_validate(content)
        except ValidationError as error:
            raise ArchiveError(f"{MANIFEST}: {brief(error)}") from None
        if (manifest.aliases is None) != (version == 1):
            raise ArchiveError(
                f"{MANIFEST}: version {version} archives "
                + ("have no" if version == 1 else "list their")
                + f" {ALIASES_FILE}"
            )
        hashes = [entry.sha256 for entry in manifest.weights]
        if len(set(hashes)) != len(hashes):
            raise ArchiveError(f"{MANIFEST}: a weight is listed twice")
        return manifest

    async def read_documents(self, name: str, described: DocumentFile) -> list[dict[str, Any]]:
        member = await self.next_member(name)
        if member.size != described.size:
            raise ArchiveError(
                f"{name}: {member.size} bytes, but the manifest says {described.size}"
            )
        file = self.open_member(member)

        def parse() -> tuple[list[dict[str, Any]], str]:
            hasher = hashlib.sha256()
            documents = []
            number = 0
            while line := file.readline(MAX_DOCUMENT_LINE_BYTES + 1):
                number += 1
                if len(line) > MAX_DOCUMENT_LINE_BYTES:
                    raise ArchiveError(
                        f"{name} line {number}: longer than {MAX_DOCUMENT_LINE_BYTES} bytes, "
                        "more than any document can be"
                    )
                hasher.update(line)
                try:
                    document = json_util.loads(line, json_options=READ_JSON)
                except (ValueError, TypeError, BSONError) as error:
                    raise ArchiveError(
                        f"{name} line {number}: not a JSON document ({error})"
                    ) from None
                except RecursionError:
                    raise ArchiveError(
                        f"{name} line {number}: JSON nested too deep to be a document"
                    ) from None
                if not isinstance(document, dict):
                    raise ArchiveError(f"{name} line {number}: not a JSON object")
                documents.append(document)
            return documents, hasher.hexdigest()

        documents, sha256 = await asyncio.to_thread(parse)
        if sha256 != described.sha256:
            raise ArchiveError(f"{name}: sha256 {sha256} differs from the manifest's")
        if len(documents) != described.count:
            raise ArchiveError(
                f"{name}: {len(documents)} documents, but the manifest says {described.count}"
            )
        return documents

    async def read_models(self, manifest: Manifest) -> list[MLModel]:
        """The models, validated, each weight listed in the manifest, lineage in the archive."""
        documents = await self.read_documents(MODELS_FILE, manifest.models)
        listed = {entry.sha256: entry.size for entry in manifest.weights}
        models: dict[str, MLModel] = {}
        keys: dict[str, str] = {}
        for number, document in enumerate(documents, start=1):
            where = f"{MODELS_FILE} line {number}"
            if not isinstance(document.get("_id"), ObjectId):
                raise ArchiveError(f"{where}: _id is not an ObjectId")
            try:
                model = model_from_document(document)
            except ValidationError as error:
                raise ArchiveError(f"{where}: model {document['_id']}: {brief(error)}") from None
            if model.id in models:
                raise ArchiveError(f"{where}: model {model.id} appears twice")
            key = describe_key(model)
            if key in keys:
                raise ArchiveError(f"{where}: models {keys[key]} and {model.id} share key {key}")
            if listed.get(model.weight.sha256) != model.weight.size:
                raise ArchiveError(
                    f"{where}: model {model.id}'s weight {model.weight.sha256} "
                    f"({model.weight.size} bytes) is not in the manifest"
                )
            storable(model_document(model), f"{where}: model {model.id}")
            models[model.id], keys[key] = model, model.id
        for model in models.values():
            if model.parent_model_id is not None and model.parent_model_id not in models:
                raise ArchiveError(
                    f"{MODELS_FILE}: model {model.id}'s parent {model.parent_model_id} "
                    "is not in the archive"
                )
        return parents_first(models)

    async def read_jobs(
        self, manifest: Manifest, model_ids: set[str]
    ) -> tuple[list[ProfilingJob], int]:
        """The finished jobs, and how many others (queued or running) were left out: a
        worker would claim those, and run what the archive's author chose under an owner
        of their naming, without the checks and quota that queueing a job passes."""
        documents = await self.read_documents(JOBS_FILE, manifest.jobs)
        jobs, unfinished = [], 0
        for number, document in enumerate(documents, start=1):
            where = f"{JOBS_FILE} line {number}"
            if not isinstance(document.get("_id"), ObjectId):
                raise ArchiveError(f"{where}: _id is not an ObjectId")
            try:
                job = job_from_document(document)
            except ValidationError as error:
                raise ArchiveError(f"{where}: job {document['_id']}: {brief(error)}") from None
            if job.model_id not in model_ids:
                raise ArchiveError(f"{where}: job {job.id}'s model {job.model_id} is not in it")
            if job.status not in FINISHED_JOB_STATUSES:
                unfinished += 1
                continue
            storable(job_document(job), f"{where}: job {job.id}")
            jobs.append(job)
        return jobs, unfinished

    async def read_aliases(self, manifest: Manifest, model_ids: set[str]) -> list[ModelAlias]:
        """The aliases, each a valid name naming a model in the archive (none in version 1)."""
        if manifest.aliases is None:
            return []
        documents = await self.read_documents(ALIASES_FILE, manifest.aliases)
        aliases = []
        for number, document in enumerate(documents, start=1):
            where = f"{ALIASES_FILE} line {number}"
            try:
                alias = alias_from_document(document)
                checked_alias(alias.alias)
            except (KeyError, ValidationError) as error:
                raise ArchiveError(f"{where}: not an alias ({error})") from None
            except BadUserInput as error:
                raise ArchiveError(f"{where}: {error.message}") from None
            if alias.model_id not in model_ids:
                raise ArchiveError(
                    f"{where}: alias {alias.alias} names model {alias.model_id}, "
                    "which is not in the archive"
                )
            storable(alias_document(alias), f"{where}: alias {alias.alias}")
            aliases.append(alias)
        if len({alias.alias for alias in aliases}) != len(aliases):
            raise ArchiveError(f"{ALIASES_FILE}: an alias appears twice")
        return aliases

    async def read_weights(
        self,
        manifest: Manifest,
        weights: WeightStore,
        needed: set[str],
        progress: Progress | None,
    ) -> dict[str, StagedWeight]:
        """Every weight streamed through sha256; those ``needed`` staged in the store on the
        way (written aside, not yet addressable). The staged files, by sha256."""
        listed = {entry.sha256: entry.size for entry in manifest.weights}
        total = sum(listed.values())
        done = 0
        staged: dict[str, StagedWeight] = {}
        seen: set[str] = set()
        try:
            for _ in manifest.weights:
                member = await asyncio.to_thread(self.tar.next)
                if member is None:
                    missing = sorted(set(listed) - seen)
                    raise ArchiveError(
                        "weights missing from the archive (truncated?): "
                        + ", ".join(missing[:5])
                        + (" …" if len(missing) > 5 else "")
                    )
                sha256 = member.name.removeprefix(WEIGHTS_PREFIX)
                if not member.name.startswith(WEIGHTS_PREFIX) or sha256 not in listed:
                    raise ArchiveError(f"unexpected member {member.name!r}")
                if sha256 in seen:
                    raise ArchiveError(f"{member.name} appears twice")
                if not plain_file(member):
                    raise ArchiveError(
                        f"{member.name} is not a plain file (sparse, a link or a device)"
                    )
                if member.size != listed[sha256]:
                    raise ArchiveError(
                        f"{member.name}: {member.size} bytes, but the manifest says "
                        f"{listed[sha256]}"
                    )
                seen.add(sha256)
                source = MemberSource(self.open_member(member), member.name)
                if sha256 in needed:
                    item = await weights.staging.write(source)
                    staged[sha256] = item
                    found, size = item.sha256, item.size
                else:
                    found, size = await source.digest()
                if found != sha256 or size != listed[sha256]:
                    raise ArchiveError(
                        f"{member.name}: the bytes' sha256 is {found}, not the manifest's: "
                        "the archive was damaged or tampered with"
                    )
                done += size
                if progress:
                    progress(done, total)
            extra = await asyncio.to_thread(self.tar.next)
            if extra is not None:
                raise ArchiveError(f"unexpected member {extra.name!r}")
        except BaseException:
            for item in staged.values():
                item.discard()
            raise
        return staged


def plain_file(member: tarfile.TarInfo) -> bool:
    """A regular member stored whole: a sparse one reads back as more bytes (zeros) than
    the archive holds for it."""
    return member.type in (tarfile.REGTYPE, tarfile.AREGTYPE) and member.sparse is None


def storable(document: dict[str, Any], where: str) -> None:
    """ArchiveError unless the database can store ``document`` as it is: JSON allows
    strings (lone surrogates) and integers that BSON does not, and a write that fails
    half-way through the import would be a damaged archive found too late."""
    try:
        size = len(bson.encode(document))
    except (BSONError, UnicodeEncodeError, OverflowError, ValueError) as error:
        raise ArchiveError(f"{where} cannot be stored ({error})") from None
    if size > MAX_BSON_DOCUMENT_BYTES:
        raise ArchiveError(f"{where} is {size} bytes, more than a stored document can be")


async def inspect_weights(
    inspector: ModelInspector, models: list[MLModel], staged: dict[str, StagedWeight]
) -> None:
    """Each model to write checked against its staged weight as a registration checks it:
    the file's format (refusing pickles unless the hub allows them, and files that would
    run code or reach files when loaded), the declared framework and engine, and the
    declared inputs and outputs against the graph's; and the format the document records
    must be the file's, since workers load it as that. ArchiveError naming the model."""
    checked: set[tuple[str, str]] = set()
    for model in models:
        declared = model.model_dump_json(include={"framework", "engine", "inputs", "outputs"})
        key = (model.weight.sha256, f"{declared} {model.weight.format}")
        if key in checked:
            continue
        where = f"model {model.id} ({describe_key(model)})"
        try:
            _, found = await inspector.checked(model, staged[model.weight.sha256].path)
        except BadUserInput as error:
            raise ArchiveError(f"{where}: {error.message}") from None
        if found is not model.weight.format:
            raise ArchiveError(
                f"{where}: its weight is recorded as {format_name(model.weight.format)}, "
                f"but the file is {format_name(found)}"
            )
        if found is WeightFormat.AOTI_PACKAGE and model.parent_model_id is None:
            # Compiled code comes in as a conversion's variant only, as on registration.
            raise ArchiveError(f"{where}: {COMPILED_PACKAGE.removeprefix('weight: ')}")
        checked.add(key)


def format_name(weight_format: WeightFormat | None) -> str:
    return "a format the hub does not read" if weight_format is None else weight_format.value


@contextlib.contextmanager
def translated_read_errors() -> Iterator[None]:
    """A tar that ends early or is garbled inside, reported as a damaged archive."""
    try:
        yield
    except (tarfile.TarError, EOFError) as error:
        raise ArchiveError(f"damaged or truncated archive ({error})") from None
    except RecursionError:  # tarfile reads a chain of extended headers recursively
        raise ArchiveError("damaged archive (tar headers chained too deep)") from None


class BoundedReads(io.FileIO):
    """The archive file, refusing any one read larger than an import asks for: tarfile
    reads an extended header (pax, a GNU long name) whole, in one read of the size the
    header claims, into memory."""

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > CHUNK_SIZE:
            raise ArchiveError(
                f"a tar header claims {size} bytes of its own, more than any header holds"
            )
        return super().read(size)


def read_whole(file: IO[bytes]) -> bytes:
    """A member's content, read in chunks (see ``BoundedReads``)."""
    return b"".join(iter(lambda: file.read(CHUNK_SIZE), b""))


class MemberSource:
    """An archive member read in chunks, a ``ByteSource`` for the store's staging."""

    def __init__(self, file: IO[bytes], name: str) -> None:
        self.file = file
        self.filename: str | None = name
        self.content_type: str | None = "application/octet-stream"

    async def read(self, size: int = -1) -> bytes:
        return await asyncio.to_thread(self.file.read, size)

    async def digest(self) -> tuple[str, int]:
        hasher, size = hashlib.sha256(), 0
        while chunk := await self.read(CHUNK_SIZE):
            hasher.update(chunk)
            size += len(chunk)
        return hasher.hexdigest(), size


def parents_first(models: dict[str, MLModel]) -> list[MLModel]:
    """The models ordered so that each comes after its parent (by depth in the lineage,
    then id); a lineage cycle is refused. Every parent is among ``models``.

    Walked down from the roots a generation at a time, so each model is visited once,
    however long its lineage."""
    children: dict[str | None, list[MLModel]] = defaultdict(list)
    for model in models.values():
        children[model.parent_model_id].append(model)
    ordered: list[MLModel] = []
    generation = sorted(children[None], key=lambda model: model.id)
    while generation:
        ordered += generation
        generation = sorted(
            (child for parent in generation for child in children[parent.id]),
            key=lambda model: model.id,
        )
    if len(ordered) != len(models):  # what no root leads to has an ancestor of its own
        reached = {model.id for model in ordered}
        stuck = min(model_id for model_id in models if model_id not in reached)
        raise ArchiveError(f"{MODELS_FILE}: model {stuck}'s lineage is a cycle")
    return ordered


async def plan_import(
    db: AsyncDatabase[dict[str, Any]],
    models: list[MLModel],
    jobs: list[ProfilingJob],
    aliases: list[ModelAlias],
) -> ImportPlan:
    """What to write, and every clash with the hub's models, jobs and aliases (read, not
    written)."""
    plan = ImportPlan()
    existing = await documents_by_id(db, MODELS, [model.id for model in models])
    for model in models:
        if model.id in existing:
            if model_from_document(existing[model.id]) != model:
                plan.conflicts.append(
                    f"model {model.id} exists in this hub with different content "
                    f"({', '.join(differing(model_from_document(existing[model.id]), model))})"
                )
            continue
        holder = await db[MODELS].find_one(to_bson(model.key().model_dump()), {"_id": 1})
        if holder is not None:
            plan.conflicts.append(
                f"model {model.id} ({describe_key(model)}): this hub has that key as "
                f"model {holder['_id']}"
            )
            continue
        plan.models.append(model)
        plan.needed.add(model.weight.sha256)
    existing_jobs = await documents_by_id(db, JOBS, [job.id for job in jobs])
    for job in jobs:
        if job.id not in existing_jobs:
            plan.jobs.append(job)
        elif job_from_document(existing_jobs[job.id]) != job:
            plan.conflicts.append(f"profiling job {job.id} exists in this hub with other content")
    names = [alias.alias for alias in aliases]
    existing_aliases = {
        document["_id"]: document async for document in db[ALIASES].find({"_id": {"$in": names}})
    }
    for alias in aliases:
        held = existing_aliases.get(alias.alias)
        if held is None:
            plan.aliases.append(alias)
        elif held.get("model_id") != alias.model_id:
            plan.conflicts.append(
                f"alias {alias.alias} names model {held.get('model_id')} in this hub, "
                f"model {alias.model_id} in the archive"
            )
    return plan


async def documents_by_id(
    db: AsyncDatabase[dict[str, Any]], collection: str, ids: list[str]
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), LOOKUP_BATCH):
        batch = [ObjectId(value) for value in ids[start : start + LOOKUP_BATCH]]
        async for document in db[collection].find({"_id": {"$in": batch}}):
            found[str(document["_id"])] = document
    return found


def differing(ours: BaseModel, theirs: BaseModel) -> list[str]:
    return [
        name for name in type(ours).model_fields if getattr(ours, name) != getattr(theirs, name)
    ]


def model_document(model: MLModel) -> dict[str, Any]:
    document: dict[str, Any] = to_bson(model.model_dump(exclude={"id"}))
    document["_id"] = ObjectId(model.id)
    return document


def alias_document(alias: ModelAlias) -> dict[str, Any]:
    return {"_id": alias.alias, "model_id": alias.model_id, "update_time": alias.update_time}


def job_document(job: ProfilingJob) -> dict[str, Any]:
    document: dict[str, Any] = to_bson(job.model_dump(exclude={"id"}))
    document["_id"] = ObjectId(job.id)
    return document


async def write_plan(
    db: AsyncDatabase[dict[str, Any]],
    weights: WeightStore,
    inspector: ModelInspector,
    plan: ImportPlan,
    staged: dict[str, StagedWeight],
    summary: ImportSummary,
) -> None:
    """Bytes, then the model documents referencing them (parents first), then the jobs.

    Each model is written under its weight's reference lock, right after its bytes are
    committed, so a delete elsewhere in the hub cannot drop bytes the model is about to
    reference. Should a write fail (another writer took a key since the check, the
    database went away), what this import wrote is removed again.
    """
    written_models: list[MLModel] = []
    written_jobs: list[str] = []
    written_aliases: list[str] = []
    try:
        for model in plan.models:
            sha256 = model.weight.sha256
            async with weights.references.held(sha256):
                if sha256 in staged:
                    await weights.commit(staged.pop(sha256))
                    summary.weights_committed += 1
                await db[MODELS].insert_one(model_document(model))
            written_models.append(model)
            summary.models += 1
        for start in range(0, len(plan.jobs), LOOKUP_BATCH):
            batch = plan.jobs[start : start + LOOKUP_BATCH]
            await db[JOBS].insert_many([job_document(job) for job in batch])
            written_jobs += [job.id for job in batch]
            summary.jobs += len(batch)
        for start in range(0, len(plan.aliases), LOOKUP_BATCH):
            names = plan.aliases[start : start + LOOKUP_BATCH]
            await db[ALIASES].insert_many([alias_document(alias) for alias in names])
            written_aliases += [alias.alias for alias in names]
            summary.aliases += len(names)
    except BaseException as error:
        await undo(db, weights, inspector, written_models, written_jobs, written_aliases)
        summary.models = summary.jobs = summary.weights_committed = summary.aliases = 0
        if isinstance(error, DuplicateKeyError | BulkWriteError):
            raise ImportConflict(
                f"another writer added a clashing model, job or alias during the import; "
                f"nothing was imported ({error})"
            ) from None
        raise


async def undo(
    db: AsyncDatabase[dict[str, Any]],
    weights: WeightStore,
    inspector: ModelInspector,
    models: list[MLModel],
    job_ids: Iterable[str],
    aliases: list[str],
) -> None:
    """Remove what a failed import wrote: aliases, jobs, then variants before parents."""
    if aliases:
        await db[ALIASES].delete_many({"_id": {"$in": aliases}})
    ids = [ObjectId(job_id) for job_id in job_ids]
    if ids:
        await db[JOBS].delete_many({"_id": {"$in": ids}})
    intake = WeightIntake(db[MODELS], weights, inspector)
    for model in reversed(models):
        await db[MODELS].delete_one({"_id": ObjectId(model.id)})
        await intake.release(model.weight.sha256)


def brief(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or 'document'}: {item['msg']}"
        for item in error.errors()[:3]
    ]
    more = f" (and {error.error_count() - 3} more)" if error.error_count() > 3 else ""
    return "; ".join(problems) + more


# A hub for the command line


@dataclass
class Hub:
    db: AsyncDatabase[dict[str, Any]]
    weights: WeightStore


@asynccontextmanager
async def opened_hub(settings: Settings, url: str, *, writing: bool) -> AsyncIterator[Hub]:
    """The hub's database and weight store, as the server opens them; ``writing``: with
    its indexes created first (a fresh hub), so that model keys stay unique."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, **settings.database_client_options()
    )
    try:
        db = client[settings.database]
        if writing:
            await prepared_database(db)
        yield Hub(db, weight_store(settings, db))
    finally:
        await client.close()
