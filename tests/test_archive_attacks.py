"""`modelci import` is a way in like registration: archives built as an attacker builds
them, each replayed through the real command against the real database.

Every archive here is hand-made (an export never holds these things): hostile weights,
queued jobs, sparse members, documents nested too deep or of the wrong types, and a long
lineage that ordering by depth walks made quadratic.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import pickle
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from bson import ObjectId, json_util
from bson.json_util import RELAXED_JSON_OPTIONS
from conftest import Api, modelci_env, serving
from pymongo import MongoClient
from starlette.applications import Starlette
from test_hostile_models import Mkdir, exported, scripted, with_pickled_weight
from torch import nn

from modelci.core.domain import (
    Engine,
    Framework,
    IOShape,
    JobKind,
    JobStatus,
    MLModel,
    ProfilingJob,
    Task,
    Weight,
    WeightFormat,
    utcnow,
)
from modelci.server.archive import (
    ARCHIVE_FORMAT,
    DocumentFile,
    Manifest,
    WeightEntry,
    job_document,
    model_document,
    parents_first,
)
from modelci.server.services import Services
from modelci.server.settings import Settings

VECTOR = [IOShape.model_validate({"name": "x", "shape": [-1, 4], "dtype": "TYPE_FP32"})]


# Archives as an attacker writes them


def model(
    weight: bytes,
    version: int = 1,
    engine: Engine = Engine.NONE,
    weight_format: WeightFormat | None = None,
    parent: MLModel | None = None,
    inputs: list[IOShape] | None = None,
) -> MLModel:
    now = utcnow()
    return MLModel(
        id=str(ObjectId()),
        architecture="Tiny",
        framework=Framework.PyTorch,
        engine=engine,
        version=version,
        dataset="Synthetic",
        task=Task.Image_Classification,
        inputs=inputs or [],
        parent_model_id=None if parent is None else parent.id,
        weight=Weight(
            filename="model.bin",
            size=len(weight),
            sha256=hashlib.sha256(weight).hexdigest(),
            content_type="application/octet-stream",
            format=weight_format,
        ),
        create_time=now,
        update_time=now,
    )


def job(target: MLModel, status: JobStatus, kind: JobKind = JobKind.CONVERT) -> ProfilingJob:
    now = utcnow()
    return ProfilingJob(
        id=str(ObjectId()),
        model_id=target.id,
        kind=kind,
        status=status,
        batch_sizes=[],
        devices=[],
        targets=[Engine.TORCHSCRIPT] if kind is JobKind.CONVERT else [],
        progress=0.0,
        owner="mallory",
        worker="gone" if status is JobStatus.RUNNING else None,
        attempts=1 if status is JobStatus.RUNNING else 0,
        max_attempts=3,
        lease_expires_at=now - timedelta(hours=1) if status is JobStatus.RUNNING else None,
        create_time=now,
        update_time=now,
    )


def lines(documents: list[dict[str, Any]]) -> bytes:
    return b"".join(
        json_util.dumps(document, json_options=RELAXED_JSON_OPTIONS).encode() + b"\n"
        for document in documents
    )


def described(content: bytes, count: int) -> DocumentFile:
    return DocumentFile(size=len(content), sha256=hashlib.sha256(content).hexdigest(), count=count)


@dataclass
class Archive:
    """An archive's parts, written with a manifest that tells the truth about them."""

    models: list[MLModel] = field(default_factory=list)
    weights: list[bytes] = field(default_factory=list)
    jobs: list[ProfilingJob] = field(default_factory=list)
    models_file: bytes | None = None  # in place of the models' own lines
    models_count: int | None = None

    def manifest(self, models_file: bytes, jobs_file: bytes) -> Manifest:
        return Manifest(
            format=ARCHIVE_FORMAT,
            format_version=2,
            created="2026-01-01T00:00:00Z",
            exported_by="an attacker",
            models=described(models_file, self.count()),
            jobs=described(jobs_file, len(self.jobs)),
            aliases=described(b"", 0),
            weights=[
                WeightEntry(sha256=hashlib.sha256(weight).hexdigest(), size=len(weight))
                for weight in self.weights
            ],
            left_out={},
        )

    def count(self) -> int:
        return len(self.models) if self.models_count is None else self.models_count

    def write(
        self,
        path: Path,
        manifest_file: bytes | None = None,
        weight_member: Callable[[str, bytes], bytes] | None = None,
    ) -> Path:
        models_file = self.models_file
        if models_file is None:
            models_file = lines([model_document(each) for each in self.models])
        jobs_file = lines([job_document(each) for each in self.jobs])
        if manifest_file is None:
            manifest_file = self.manifest(models_file, jobs_file).model_dump_json().encode()
        members = [
            ("manifest.json", manifest_file),
            ("models.jsonl", models_file),
            ("jobs.jsonl", jobs_file),
            ("aliases.jsonl", b""),
        ]
        with path.open("wb") as out:
            for name, content in members:
                out.write(plain_member(name, content))
            for weight in self.weights:
                name = f"weights/{hashlib.sha256(weight).hexdigest()}"
                out.write((weight_member or plain_member)(name, weight))
            out.write(tarfile.NUL * 2 * tarfile.BLOCKSIZE)
        return path


def plain_member(name: str, content: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info.tobuf(tarfile.GNU_FORMAT) + padded(content)


def padded(content: bytes) -> bytes:
    return content + tarfile.NUL * (-len(content) % tarfile.BLOCKSIZE)


def sparse_member(name: str, content: bytes) -> bytes:
    """``content`` as an old-GNU sparse member: its first block stored, the rest a hole
    that reads back as zeros (content must be zeros after its first block)."""
    stored = content[: tarfile.BLOCKSIZE]
    assert content[len(stored) :] == bytes(len(content) - len(stored))
    info = tarfile.TarInfo(name)
    info.size = len(stored)
    info.type = tarfile.GNUTYPE_SPARSE
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[386:398] = b"%011o\0" % 0  # one region: offset 0, the stored bytes
    header[398:410] = b"%011o\0" % len(stored)
    header[483:495] = b"%011o\0" % len(content)  # the size it reads back as
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + padded(stored)


# The hub, and the command


@dataclass
class Hub:
    api: Api
    services: Services
    settings: Settings
    env: dict[str, str]

    async def modelci_import(self, archive: Path, *flags: str, **env: str) -> Imported:
        return await self.modelci("import", str(archive), *flags, **env)

    async def modelci(self, *arguments: str, **env: str) -> Imported:
        command = [sys.executable, "-m", "modelci.cli", *arguments]
        finished = await asyncio.to_thread(
            subprocess.run,
            command,
            capture_output=True,
            text=True,
            env={**self.env, **{f"MODELCI_{key.upper()}": value for key, value in env.items()}},
            timeout=300,
        )
        return Imported(finished.returncode, finished.stdout, finished.stderr)

    async def counts(self) -> tuple[int, int]:
        db = self.services.db
        return (
            await db["models"].count_documents({}),
            await db["profiling_jobs"].count_documents({}),
        )

    def stored_files(self) -> list[Path]:
        """Weight bytes and staged files: what an import may leave on disk."""
        folders = (self.settings.weights_dir / "blobs", self.settings.staging_dir)
        return sorted(path for folder in folders if folder.exists() for path in folder.rglob("*"))

    async def assert_untouched(self) -> None:
        assert await self.counts() == (0, 0)
        assert [path for path in self.stored_files() if path.is_file()] == []


@dataclass
class Imported:
    code: int
    stdout: str
    stderr: str

    def refusal(self) -> str:
        """The one line a refused import prints, after checking it is just that."""
        assert self.code == 2, (self.stdout, self.stderr)
        assert "Traceback" not in self.stderr, self.stderr
        (line,) = self.stderr.strip().splitlines()
        assert line.startswith("error: refused") and "nothing imported" in line, line
        assert "\x1b" not in line
        return line


@pytest.fixture
async def target(app: Starlette, settings: Settings, mongodb_url: str) -> AsyncIterator[Hub]:
    """A running hub (no workers), and the environment in which `modelci import` writes
    into its database and weight files."""
    env = modelci_env(
        mongodb_url=mongodb_url,
        database=settings.database,
        data_dir=str(settings.data_dir),
        weight_store="files",
    )
    async with serving(app) as api:
        yield Hub(api, app.state.services, settings, env)


@pytest.fixture(scope="module")
def small_pt2() -> bytes:
    return exported(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), torch.randn(2, 4))


def pt2_model(weight: bytes, **overrides: Any) -> MLModel:
    fields: dict[str, Any] = {
        "engine": Engine.PYTORCH,
        "weight_format": WeightFormat.TORCH_EXPORT,
        "inputs": VECTOR,
    }
    return model(weight, **(fields | overrides))


async def assert_nothing_claimable(services: Services) -> None:
    for kinds in ([JobKind.PROFILE], [JobKind.CONVERT]):
        assert await services.jobs.claim("a-worker", ["cpu"], 60.0, kinds, "a-token") is None


# Weights are inspected as registration inspects them


async def test_a_pt2_with_a_pickled_weight_and_a_queued_conversion_is_refused_whole(
    target: Hub, small_pt2: bytes, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    hostile = with_pickled_weight(small_pt2, pickle.dumps(Mkdir(marker), protocol=2))
    innocent, payload = model(b"harmless bytes"), pt2_model(hostile, version=2)
    archive = Archive(
        models=[innocent, payload],
        weights=[b"harmless bytes", hostile],
        jobs=[job(payload, JobStatus.QUEUED)],
    ).write(tmp_path / "hostile.tar")

    line = (await target.modelci_import(archive)).refusal()
    assert f"model {payload.id}" in line and "pickled" in line and "--allow-pickle" in line
    await target.assert_untouched()
    await assert_nothing_claimable(target.services)
    assert not marker.exists()


async def test_with_allow_pickle_the_pickled_pt2_imports_but_its_queued_job_does_not(
    target: Hub, small_pt2: bytes, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    hostile = with_pickled_weight(small_pt2, pickle.dumps(Mkdir(marker), protocol=2))
    payload = pt2_model(hostile)
    archive = Archive(
        models=[payload], weights=[hostile], jobs=[job(payload, JobStatus.QUEUED)]
    ).write(tmp_path / "trusted.tar")

    imported = await target.modelci_import(archive, "--allow-pickle")
    assert imported.code == 0, imported.stderr
    assert "imported 1 model " in imported.stdout and "0 jobs" in imported.stdout
    assert "left out 1 job queued or running" in imported.stderr
    assert await target.counts() == (1, 0)
    await assert_nothing_claimable(target.services)
    assert not marker.exists()  # inspected, never unpickled


async def test_declared_inputs_that_contradict_the_graph_are_refused_naming_the_field(
    target: Hub, small_pt2: bytes, tmp_path: Path
) -> None:
    wrong = [IOShape.model_validate({"name": "x", "shape": [-1, 5], "dtype": "TYPE_FP32"})]
    liar = pt2_model(small_pt2, inputs=wrong)
    archive = Archive(models=[liar], weights=[small_pt2]).write(tmp_path / "liar.tar")

    line = (await target.modelci_import(archive)).refusal()
    assert f"model {liar.id}" in line and "input.inputs[0].shape" in line
    await target.assert_untouched()


async def test_a_weight_recorded_as_another_format_than_it_is_is_refused(
    target: Hub, small_pt2: bytes, tmp_path: Path
) -> None:
    liar = pt2_model(small_pt2, weight_format=WeightFormat.TORCHSCRIPT)
    archive = Archive(models=[liar], weights=[small_pt2]).write(tmp_path / "liar.tar")

    line = (await target.modelci_import(archive)).refusal()
    assert f"model {liar.id}" in line and "recorded as TorchScript" in line
    assert "the file is torch.export" in line
    await target.assert_untouched()


# Only finished jobs come in


async def test_queued_and_running_jobs_are_left_out_and_no_worker_can_claim_any(
    target: Hub, tmp_path: Path
) -> None:
    subject = model(b"weights")
    finished = job(subject, JobStatus.SUCCEEDED, JobKind.PROFILE)
    archive = Archive(
        models=[subject],
        weights=[b"weights"],
        jobs=[
            job(subject, JobStatus.QUEUED, JobKind.PROFILE),
            job(subject, JobStatus.RUNNING),  # its lease ran out an hour ago
            finished,
        ],
    ).write(tmp_path / "jobs.tar")

    imported = await target.modelci_import(archive)
    assert imported.code == 0, imported.stderr
    assert "1 job (0 skipped)" in imported.stdout
    assert "left out 2 jobs queued or running" in imported.stderr
    jobs = target.services.db["profiling_jobs"]
    assert [str(document["_id"]) async for document in jobs.find()] == [finished.id]
    await assert_nothing_claimable(target.services)
    # mallory's name on the archive's jobs takes nothing from mallory's quota here.
    await target.services.job_service.check_quota(
        "mallory", target.settings.max_queued_jobs_per_token
    )


# Sizes are checked before bytes are written


async def test_a_sparse_member_expanding_past_the_archive_is_refused_before_it_is_read(
    target: Hub, tmp_path: Path
) -> None:
    zeros = bytes(256 * 1024 * 1024)  # 256 MiB from an archive of a few KiB
    archive = Archive(models=[model(zeros)], weights=[zeros]).write(
        tmp_path / "sparse.tar", weight_member=sparse_member
    )
    assert archive.stat().st_size < 64 * 1024

    line = (await target.modelci_import(archive)).refusal()
    assert "more than the archive's" in line
    await target.assert_untouched()


async def test_a_sparse_member_is_refused_even_within_the_archive_s_size(
    target: Hub, tmp_path: Path
) -> None:
    zeros = bytes(16 * 1024)
    archive = Archive(models=[model(zeros)], weights=[zeros]).write(
        tmp_path / "sparse.tar", weight_member=sparse_member
    )
    with archive.open("ab") as out:  # tar readers stop at the end marker: room, not content
        out.write(bytes(64 * 1024))

    line = (await target.modelci_import(archive)).refusal()
    assert "is not a plain file (sparse" in line
    await target.assert_untouched()


async def test_a_weight_larger_than_the_hub_s_upload_cap_is_refused(
    target: Hub, tmp_path: Path
) -> None:
    weight = bytes(range(256)) * 256  # 64 KiB
    archive = Archive(models=[model(weight)], weights=[weight]).write(tmp_path / "big.tar")

    line = (await target.modelci_import(archive, max_upload_bytes="32768")).refusal()
    assert "65536 bytes, more than this hub accepts for one weight" in line
    await target.assert_untouched()

    imported = await target.modelci_import(archive)  # under the default cap, it is welcome
    assert imported.code == 0, imported.stderr
    assert await target.counts() == (1, 0)


# Malformed documents: exit 2, one line, no traceback


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def a_models_file(content: bytes, count: int = 1) -> Archive:
    """An archive whose models.jsonl is ``content``, the manifest telling its truth."""
    return Archive(weights=[b"weights"], models_file=content, models_count=count)


def huge_manifest_header(path: Path) -> Path:
    info = tarfile.TarInfo("manifest.json")
    info.size = 1024**3  # claimed; the archive ends after the header
    path.write_bytes(info.tobuf(tarfile.GNU_FORMAT))
    return path


def pax_header(records: bytes) -> bytes:
    """An extended header holding ``records``, for the member after it."""
    info = tarfile.TarInfo("PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, len(records)
    return info.tobuf(tarfile.USTAR_FORMAT) + padded(records)


def pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


def before_the_manifest(headers: bytes) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        Archive(weights=[b"weights"]).write(path)
        path.write_bytes(headers + path.read_bytes())
        return path

    return write


def lineage_cycle(path: Path) -> Path:
    first, second = model(b"weights", 1), model(b"weights", 2)
    first.parent_model_id, second.parent_model_id = second.id, first.id
    return Archive(models=[first, second], weights=[b"weights"]).write(path)


def document_of(**changes: Any) -> bytes:
    document = model_document(model(b"weights"))
    document.update(changes)
    return lines([document])


MALFORMED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "manifest nested 100 000 deep": (
        lambda path: Archive(weights=[b"weights"]).write(path, manifest_file=nested(100_000)),
        "manifest.json: JSON nested too deep",
    ),
    "model nested 100 000 deep": (
        lambda path: a_models_file(nested(100_000) + b"\n").write(path),
        "models.jsonl line 1: JSON nested too deep",
    ),
    "manifest not UTF-8": (
        lambda path: Archive(weights=[b"weights"]).write(path, manifest_file=b'{"format": "\xff"}'),
        "manifest.json: not JSON",
    ),
    "model not UTF-8": (
        lambda path: a_models_file(b'{"architecture": "\xff\xfe"}\n').write(path),
        "models.jsonl line 1: not a JSON document",
    ),
    "manifest of the wrong types": (
        lambda path: Archive(weights=[b"weights"]).write(
            path,
            manifest_file=json.dumps(
                {"format": ARCHIVE_FORMAT, "format_version": 2, "weights": "many"}
            ).encode(),
        ),
        "manifest.json: ",
    ),
    "model of the wrong types": (
        lambda path: a_models_file(document_of(version=[1], inputs="x")).write(path),
        "models.jsonl line 1: model ",
    ),
    "model with a lone surrogate": (
        lambda path: a_models_file(document_of(creator="\ud800")).write(path),
        "creator: Input should be a valid string",
    ),
    "model with a field named by a terminal escape": (
        lambda path: a_models_file(document_of(**{"\x1b[2Jboom": 1})).write(path),
        "[2Jboom: Extra inputs are not permitted",
    ),
    "model with an integer BSON cannot hold": (
        lambda path: a_models_file(
            document_of(
                profile_result={
                    "static_result": {
                        "parameters": 2**70,
                        **dict.fromkeys(("flops", "memory", "mread", "mwrite", "mrw"), 1),
                    },
                    "dynamic_results": [],
                }
            )
        ).write(path),
        "cannot be stored (MongoDB can only handle up to 8-byte ints)",
    ),
    "model with a version GraphQL cannot carry": (
        lambda path: a_models_file(document_of(version=2**31)).write(path),
        "version: Input should be less than or equal to 2147483647",
    ),
    "huge manifest": (huge_manifest_header, "more than a manifest can be"),
    "tar header of 2 MiB": (
        before_the_manifest(pax_header(pax_record("comment", b"a" * 2 * 1024 * 1024))),
        "more than any header holds",
    ),
    "tar headers chained 5 000 deep": (
        before_the_manifest(pax_header(pax_record("comment", b"a")) * 5000),
        "tar headers chained too deep",
    ),
    "lineage cycle": (lineage_cycle, "lineage is a cycle"),
}


@pytest.mark.parametrize("case", MALFORMED)
async def test_a_malformed_archive_exits_2_with_one_line_and_writes_nothing(
    case: str, target: Hub, tmp_path: Path
) -> None:
    make, said = MALFORMED[case]
    archive = make(tmp_path / "malformed.tar")

    line = (await target.modelci_import(archive)).refusal()
    assert said in line, line
    await target.assert_untouched()


# A long lineage


def chain(length: int) -> list[MLModel]:
    """Models each the variant of the one before, all sharing one weight."""
    models = [model(b"weights", 1)]
    for version in range(2, length + 1):
        models.append(model(b"weights", version, parent=models[-1]))
    return models


def test_parents_come_before_their_variants_in_a_long_lineage_and_a_tree() -> None:
    lineage = chain(2000)
    branches = [model(b"weights", 3000 + n, parent=lineage[n * 97]) for n in range(20)]
    shuffled = list(reversed(lineage)) + branches
    ordered = parents_first({each.id: each for each in shuffled})

    assert sorted(each.id for each in ordered) == sorted(each.id for each in shuffled)
    position = {each.id: index for index, each in enumerate(ordered)}
    for each in ordered:
        if each.parent_model_id is not None:
            assert position[each.parent_model_id] < position[each.id]
    kept = {each.id for each in lineage}
    assert [each for each in ordered if each.id in kept] == lineage


async def test_a_lineage_of_2000_models_imports(target: Hub, tmp_path: Path) -> None:
    lineage = chain(2000)
    archive = Archive(models=list(reversed(lineage)), weights=[b"weights"])
    path = archive.write(tmp_path / "lineage.tar")

    imported = await target.modelci_import(path)
    assert imported.code == 0, imported.stderr
    assert "imported 2000 models" in imported.stdout
    parents = {
        str(document["_id"]): document["parent_model_id"]
        async for document in target.services.db["models"].find({}, {"parent_model_id": 1})
    }
    assert parents == {each.id: each.parent_model_id for each in lineage}


async def test_an_archive_with_a_finished_job_round_trips_through_the_command(
    target: Hub, tmp_path: Path
) -> None:
    subject = model(bytes(range(256)) * 4)
    finished = job(subject, JobStatus.CANCELLED, JobKind.PROFILE)
    archive = Archive(models=[subject], weights=[bytes(range(256)) * 4], jobs=[finished])
    path = archive.write(tmp_path / "ok.tar")

    imported = await target.modelci_import(path)
    assert imported.code == 0, imported.stderr
    assert "imported 1 model (0 skipped" in imported.stdout and "1 job " in imported.stdout
    assert imported.stderr == ""
    again = await target.modelci_import(path)
    assert "imported 0 models (1 skipped" in again.stdout and "0 jobs (1 skipped)" in again.stdout
    assert await target.counts() == (1, 1)


async def test_real_onnx_pt2_and_torchscript_models_move_to_another_hub_through_the_commands(
    target: Hub, onnx_model: Path, small_pt2: bytes, mongodb_url: str, tmp_path: Path
) -> None:
    onnx = await target.api.register(
        weight=onnx_model.read_bytes(), filename="small.onnx", engine="ONNX", inputs=[], outputs=[]
    )
    pt2 = await target.api.register(
        weight=small_pt2, filename="small.pt2", engine="PYTORCH", version=2, inputs=[], outputs=[]
    )
    torchscript = await target.api.register(
        weight=scripted(nn.Sequential(nn.Linear(4, 3), nn.ReLU())),
        filename="small.pt",
        engine="TORCHSCRIPT",
        version=3,
        inputs=[{"name": "x", "shape": [-1, 4], "dtype": "TYPE_FP32"}],
        outputs=[],
    )
    archive = tmp_path / "hub.tar"
    exported = await target.modelci("export", str(archive))
    assert exported.code == 0, exported.stderr

    elsewhere = f"{target.settings.database}_moved"
    try:
        imported = await target.modelci_import(
            archive, database=elsewhere, data_dir=str(tmp_path / "moved")
        )
        assert imported.code == 0, imported.stderr
        assert "imported 3 models (0 skipped" in imported.stdout
        with MongoClient(mongodb_url) as client:
            moved = {str(each["_id"]): each for each in client[elsewhere]["models"].find()}
        assert sorted(moved) == sorted([onnx["id"], pt2["id"], torchscript["id"]])
        assert moved[onnx["id"]]["inputs"][0]["shape"] == [-1, 3, 16, 16]
    finally:
        with MongoClient(mongodb_url) as client:
            client.drop_database(elsewhere)
