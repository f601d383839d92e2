"""Export and import: a hub moved whole into a fresh one, twice, and damaged archives refused."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from conftest import (
    MODEL_FIELDS,
    Api,
    dynamic_result,
    modelci_env,
    modelci_serve,
    register_live,
    serving,
)
from pymongo import MongoClient
from starlette.applications import Starlette

from modelci.core.domain import JobKind, ModelFields
from modelci.server.app import create_app
from modelci.server.archive import ArchiveError, ImportConflict, export_hub, import_hub
from modelci.server.embedded import free_port
from modelci.server.services import Services
from modelci.server.settings import Settings

MODELS = "{ models(first: 100) { edges { node { %s } } } }" % MODEL_FIELDS
STATIC = """
mutation($id: ID!, $result: StaticProfileResultInput!) {
  registerStaticProfilingResult(modelId: $id, result: $result) { id }
}"""
DYNAMIC = """
mutation($id: ID!, $result: DynamicProfileResultInput!) {
  registerDynamicProfilingResult(modelId: $id, result: $result) { id }
}"""
PROFILE = "mutation($id: ID!) { profileModel(modelId: $id) { id status } }"
JOB = "query($id: ID!) { profilingJob(id: $id) { id status modelId log { message } } }"
UPDATE = (
    "mutation($id: ID!, $input: ModelUpdateInput!) { updateModel(id: $id, input: $input) { id } }"
)
COUNT = "{ models(first: 100) { edges { node { id } } } }"
SET_ALIAS = "mutation($a: String!, $id: ID!) { setModelAlias(alias: $a, modelId: $id) { alias } }"
ALIASES = "{ modelAliases { alias modelId updateTime } }"
NONE = {"models": {"edges": []}}
STATIC_RESULT = {"parameters": 11, "flops": 22, "memory": 33, "mread": 4, "mwrite": 5, "mrw": 9}


@dataclass
class BytesSource:
    """A weight from memory, for registering a converted variant through the registry."""

    data: bytes
    filename: str | None = "variant.bin"
    content_type: str | None = "application/octet-stream"

    async def read(self, size: int = -1) -> bytes:
        size = len(self.data) if size < 0 else size
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


@dataclass
class Hub:
    api: Api
    services: Services
    settings: Settings


@asynccontextmanager
async def started(app: Starlette, settings: Settings) -> AsyncIterator[Hub]:
    async with serving(app) as api:
        yield Hub(api, app.state.services, settings)


@pytest.fixture
async def source(app: Starlette, settings: Settings) -> AsyncIterator[Hub]:
    async with started(app, settings) as hub:
        yield hub


@pytest.fixture(params=["files", "gridfs"])
async def target(
    request: pytest.FixtureRequest, tmp_path: Path, mongodb_url: str
) -> AsyncIterator[Hub]:
    """A second, fresh hub: its own database and data directory, weights in files or, as
    on MongoDB, in GridFS."""
    settings = Settings(  # type: ignore[call-arg]
        mongodb_url=None,
        database=f"modelci_target_{uuid.uuid4().hex[:12]}",
        data_dir=tmp_path / "target",
        weight_store=request.param,
        workers=0,
        _env_file=None,
    )
    try:
        async with started(create_app(settings, mongodb_url=mongodb_url), settings) as hub:
            yield hub
    finally:
        with MongoClient(mongodb_url) as client:
            client.drop_database(settings.database)


async def all_models(api: Api) -> list[dict[str, Any]]:
    edges = (await api.data(MODELS))["models"]["edges"]
    return sorted((edge["node"] for edge in edges), key=lambda model: model["id"])


async def downloaded_sha256(api: Api, model_id: str) -> str:
    response = await api.http.get(f"/models/{model_id}/weight")
    assert response.status_code == 200
    return hashlib.sha256(response.content).hexdigest()


async def stored_weights(hub: Hub) -> list[str]:
    """Weight bytes (files or GridFS) and staged uploads: what an import may leave behind."""
    settings = hub.settings
    files = [
        str(path)
        for folder in (settings.weights_dir / "blobs", settings.staging_dir)
        if folder.exists()
        for path in folder.rglob("*")
        if path.is_file()
    ]
    gridfs = await hub.services.db["weights.files"].distinct("filename")
    chunks = await hub.services.db["weights.chunks"].count_documents({})
    return sorted(files + gridfs + [f"{chunks} chunks"] * bool(chunks))


async def populated(hub: Hub) -> dict[str, Any]:
    """A model with static and dynamic results, a converted variant, a model sharing the
    first one's bytes, a finished job and a queued one, an alias for the model and one
    for its variant."""
    parent = await hub.api.register(weight=os.urandom(64 * 1024), filename="resnet.pt")
    await hub.api.data(STATIC, {"id": parent["id"], "result": STATIC_RESULT})
    await hub.api.data(DYNAMIC, {"id": parent["id"], "result": dynamic_result(batch=1)})
    await hub.api.data(DYNAMIC, {"id": parent["id"], "result": dynamic_result(batch=8)})
    fields = ModelFields.model_validate(
        {"architecture": "ResNet50", "framework": "PyTorch", "engine": "NONE", "version": 2}
        | {"dataset": "ImageNet", "task": "Image_Classification", "model_status": ["CONVERTED"]}
    )
    variant = await hub.services.registry.register(
        fields, BytesSource(os.urandom(32 * 1024)), parent_model_id=parent["id"]
    )
    twin_weight = await hub.api.http.get(f"/models/{parent['id']}/weight")
    twin = await hub.api.register(weight=twin_weight.content, version=3)
    finished = await hub.services.jobs.enqueue(parent["id"], JobKind.PROFILE, [1], [])
    await hub.services.jobs.cancel(finished.id)
    queued = (await hub.api.data(PROFILE, {"id": twin["id"]}))["profileModel"]
    assert queued["status"] == "QUEUED"
    await hub.api.data(SET_ALIAS, {"a": "resnet-prod", "id": parent["id"]})
    await hub.api.data(SET_ALIAS, {"a": "resnet-onnx", "id": variant.id})
    return {"parent": parent, "variant": variant, "twin": twin, "finished": finished.id}


async def all_aliases(api: Api) -> list[dict[str, Any]]:
    aliases: list[dict[str, Any]] = (await api.data(ALIASES))["modelAliases"]
    return aliases


async def test_export_then_import_into_a_fresh_hub_gives_the_same_hub_and_again_nothing(
    source: Hub, target: Hub, tmp_path: Path
) -> None:
    made = await populated(source)
    archive = tmp_path / "hub.tar"
    exported = await export_hub(source.services.db, source.services.weights, archive)
    assert (exported.models, exported.weights, exported.jobs, exported.aliases) == (3, 2, 1, 2)
    assert exported.jobs_left_out == 1  # the queued one
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["format_version"] == 3 and manifest["aliases"]["count"] == 2
    assert {entry["sha256"] for entry in manifest["weights"]} == {
        made["parent"]["weight"]["sha256"],
        made["variant"].weight.sha256,
    }

    imported = await import_hub(
        target.services.db, target.services.weights, archive, target.settings
    )
    assert (imported.models, imported.models_skipped, imported.jobs) == (3, 0, 1)
    assert imported.weights_committed == 2 and imported.aliases == 2
    assert await all_aliases(target.api) == await all_aliases(source.api)
    assert [alias["modelId"] for alias in await all_aliases(target.api)] == [
        made["variant"].id,  # resnet-onnx
        made["parent"]["id"],  # resnet-prod
    ]

    models = await all_models(target.api)
    assert models == await all_models(source.api)  # ids, lineage, profiles, times
    parent = next(model for model in models if model["id"] == made["parent"]["id"])
    assert parent["profileResult"]["staticResult"] == STATIC_RESULT
    assert [r["batch"] for r in parent["profileResult"]["dynamicResults"]] == [1, 8]
    variant = next(model for model in models if model["id"] == made["variant"].id)
    assert variant["parentModelId"] == made["parent"]["id"]
    for model in models:
        assert await downloaded_sha256(target.api, model["id"]) == model["weight"]["sha256"]
    job = (await target.api.data(JOB, {"id": made["finished"]}))["profilingJob"]
    assert job["status"] == "CANCELLED" and job["modelId"] == made["parent"]["id"]

    stored = await stored_weights(target)
    again = await import_hub(target.services.db, target.services.weights, archive, target.settings)
    assert (again.models, again.models_skipped, again.jobs, again.jobs_skipped) == (0, 3, 0, 1)
    assert again.weights_committed == 0
    assert (again.aliases, again.aliases_skipped) == (0, 2)
    assert await all_models(target.api) == models
    assert await stored_weights(target) == stored


def rewritten(
    archive: Path, out: Path, change: Callable[[str, bytes], tuple[str, bytes] | None]
) -> Path:
    """A copy of the archive with each member passed through ``change`` (None drops it)."""
    with tarfile.open(archive) as tar, tarfile.open(out, "w") as copy:
        for member in tar.getmembers():
            file = tar.extractfile(member)
            assert file is not None
            changed = change(member.name, file.read())
            if changed is not None:
                info = tarfile.TarInfo(changed[0])
                info.size = len(changed[1])
                copy.addfile(info, io.BytesIO(changed[1]))
    return out


def truncated(archive: Path, out: Path) -> Path:
    data = archive.read_bytes()
    with tarfile.open(archive) as tar:
        last = tar.getmembers()[-1]
    out.write_bytes(data[: last.offset_data + last.size // 2])  # cut within the last weight
    return out


def tampered_weight(archive: Path, out: Path) -> Path:
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        weight = next(m for m in tar.getmembers() if m.name.startswith("weights/"))
    data[weight.offset_data + 100] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


def with_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[..., Any]:
    def rewrite(name: str, content: bytes) -> tuple[str, bytes]:
        if name != "manifest.json":
            return name, content
        manifest = json.loads(content)
        change(manifest)
        return name, json.dumps(manifest).encode()

    return rewrite


def invalid_model(archive: Path, out: Path) -> Path:
    """A model document with version 0, the manifest updated to match it: only validation
    can tell."""
    with tarfile.open(archive) as tar:
        models = tar.extractfile("models.jsonl").read()  # type: ignore[union-attr]
    broken = models.replace(b'"version": 1', b'"version": 0', 1)
    assert broken != models

    def manifest(content: dict[str, Any]) -> None:
        content["models"]["sha256"] = hashlib.sha256(broken).hexdigest()
        content["models"]["size"] = len(broken)

    def change(name: str, content: bytes) -> tuple[str, bytes]:
        if name == "models.jsonl":
            return name, broken
        return with_manifest(manifest)(name, content)  # type: ignore[no-any-return]

    return rewritten(archive, out, change)


def future_version(manifest: dict[str, Any]) -> None:
    manifest["format_version"] = 99


def with_aliases(archive: Path, out: Path, lines: bytes | None) -> Path:
    """A copy whose aliases.jsonl holds ``lines`` (None: a version 1 archive, without
    it), the manifest updated to match."""

    def manifest(content: dict[str, Any]) -> None:
        if lines is None:
            content["format_version"] = 1
            del content["aliases"]
        else:
            content["aliases"].update(
                sha256=hashlib.sha256(lines).hexdigest(), size=len(lines), count=lines.count(b"\n")
            )

    def change(name: str, content: bytes) -> tuple[str, bytes] | None:
        if name == "aliases.jsonl":
            return None if lines is None else (name, lines)
        return with_manifest(manifest)(name, content)  # type: ignore[no-any-return]

    return rewritten(archive, out, change)


def alias_of_a_stranger(archive: Path, out: Path) -> Path:
    line = b'{"_id": "lost", "model_id": "%s", "update_time": {"$date": 0}}\n' % (b"f" * 24)
    return with_aliases(archive, out, line)


DAMAGES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "truncated": (truncated, "truncated"),
    "tampered weight": (tampered_weight, "sha256"),
    "no manifest": (
        lambda archive, out: rewritten(
            archive, out, lambda name, content: None if name == "manifest.json" else (name, content)
        ),
        "manifest.json is missing",
    ),
    "unknown version": (
        lambda archive, out: rewritten(archive, out, with_manifest(future_version)),
        "format version 99",
    ),
    "invalid model": (invalid_model, "version"),
    "alias of a model not in it": (alias_of_a_stranger, "not in the archive"),
}


@pytest.mark.parametrize("damage", DAMAGES)
async def test_a_damaged_archive_is_refused_and_changes_nothing(
    damage: str, source: Hub, target: Hub, tmp_path: Path
) -> None:
    await populated(source)
    archive = tmp_path / "hub.tar"
    await export_hub(source.services.db, source.services.weights, archive)
    make, said = DAMAGES[damage]
    broken = make(archive, tmp_path / "broken.tar")

    with pytest.raises(ArchiveError, match=said):
        await import_hub(target.services.db, target.services.weights, broken, target.settings)
    assert await all_models(target.api) == []
    assert await target.services.db["profiling_jobs"].count_documents({}) == 0
    assert await stored_weights(target) == []


async def test_an_import_that_clashes_with_the_hub_writes_nothing(
    source: Hub, target: Hub, tmp_path: Path
) -> None:
    made = await populated(source)
    archive = tmp_path / "hub.tar"
    await export_hub(source.services.db, source.services.weights, archive)

    # The target holds the parent's key under another id.
    await target.api.register(weight=b"someone else's")
    stored = await stored_weights(target)
    with pytest.raises(ImportConflict, match=f"model {made['parent']['id']} .*this hub has"):
        await import_hub(target.services.db, target.services.weights, archive, target.settings)
    assert len(await all_models(target.api)) == 1
    assert await stored_weights(target) == stored

    # The same ids, one of them changed since: refused, naming what differs.
    await source.api.data(UPDATE, {"id": made["variant"].id, "input": {"creator": "alice"}})
    before = await all_models(source.api)
    with pytest.raises(ImportConflict, match=f"model {made['variant'].id} exists .*creator"):
        await import_hub(source.services.db, source.services.weights, archive, source.settings)
    assert await all_models(source.api) == before


async def test_an_alias_naming_another_model_here_is_a_clash(
    source: Hub, target: Hub, tmp_path: Path
) -> None:
    made = await populated(source)
    archive = tmp_path / "hub.tar"
    await export_hub(source.services.db, source.services.weights, archive)

    theirs = await target.api.register(weight=b"someone else's", version=9)
    await target.api.data(SET_ALIAS, {"a": "resnet-prod", "id": theirs["id"]})
    stored = await stored_weights(target)
    with pytest.raises(
        ImportConflict, match=f"alias resnet-prod names model {theirs['id']} in this hub, "
        f"model {made['parent']['id']} in the archive",
    ):  # fmt: skip
        await import_hub(target.services.db, target.services.weights, archive, target.settings)
    assert [model["id"] for model in await all_models(target.api)] == [theirs["id"]]
    assert [alias["alias"] for alias in await all_aliases(target.api)] == ["resnet-prod"]
    assert await stored_weights(target) == stored


async def test_an_archive_of_version_1_without_aliases_still_imports(
    source: Hub, target: Hub, tmp_path: Path
) -> None:
    await populated(source)
    archive = tmp_path / "hub.tar"
    await export_hub(source.services.db, source.services.weights, archive)
    older = with_aliases(archive, tmp_path / "v1.tar", None)

    imported = await import_hub(target.services.db, target.services.weights, older, target.settings)
    assert (imported.models, imported.aliases) == (3, 0)
    assert await all_models(target.api) == await all_models(source.api)
    assert await all_aliases(target.api) == []


def modelci(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelci.cli", *arguments],
        capture_output=True,
        text=True,
        env=modelci_env(),
        timeout=120,
    )


def test_the_command_line_moves_a_hub_to_another_data_directory(tmp_path: Path) -> None:
    old, new, archive = tmp_path / "old", tmp_path / "new", tmp_path / "hub.tar"
    weights = {version: os.urandom(128 * 1024) for version in (1, 2)}
    with modelci_serve(old, free_port(), workers="0") as (url, _):
        ids = {
            version: register_live(url, content, "convert: false", version=version)
            for version, content in weights.items()
        }
    # As the README says: the server stopped, export starts the embedded database itself.
    exported = modelci("export", str(archive), "--data-dir", str(old))
    assert exported.returncode == 0, exported.stderr
    assert "exported 2 models" in exported.stdout

    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with modelci_serve(new, free_port(), workers="0") as (url, _):
        # With a server running, import writes into the database it holds.
        refused = modelci("import", str(cut), "--data-dir", str(new))
        assert refused.returncode == 2
        assert "nothing imported" in refused.stderr and "truncated" in refused.stderr
        assert httpx.post(f"{url}/graphql", json={"query": COUNT}).json()["data"] == NONE

        imported = modelci("import", str(archive), "--data-dir", str(new))
        assert imported.returncode == 0, imported.stderr
        assert "imported 2 models (0 skipped" in imported.stdout
        again = modelci("import", str(archive), "--data-dir", str(new))
        assert again.returncode == 0, again.stderr
        assert "imported 0 models (2 skipped" in again.stdout

        for version, model_id in ids.items():
            assert httpx.get(f"{url}/models/{model_id}/weight").content == weights[version]


async def test_a_hub_holding_a_variant_without_its_source_exports_an_archive_that_imports(
    source: Hub, target: Hub, tmp_path: Path
) -> None:
    """An older hub could keep a variant whose source a racing delete removed; its export
    was refused by every import ("parent … is not in the archive"). Now the variant goes
    without its link, said so, and the archive imports."""
    made = await populated(source)
    variant = made["variant"].id
    await source.services.db["models"].delete_one({"_id": ObjectId(made["parent"]["id"])})
    archive = tmp_path / "hub.tar"
    exported = await export_hub(source.services.db, source.services.weights, archive)
    assert exported.sources_missing == [variant]

    await import_hub(target.services.db, target.services.weights, archive, target.settings)
    imported = {model["id"]: model for model in await all_models(target.api)}
    assert made["parent"]["id"] not in imported
    assert imported[variant]["parentModelId"] is None
