"""Weight files: streamed in, streamed out, byte for byte; limits; leftovers collected."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PREFLIGHT, REGISTER, Api, model_input, multipart, serving
from pymongo import MongoClient
from test_errors import model_count, staged_files, stored_blobs

from modelci.server.app import create_app
from modelci.server.settings import Settings

MiB = 1024 * 1024


# Sizes around the staging buffers (4 MiB) and direct I/O blocks (4 KiB).
@pytest.mark.parametrize("size", [1, 4096, 4 * MiB, 9 * MiB + 123])
async def test_weight_round_trip(api: Api, size: int) -> None:
    weight = os.urandom(size)
    model = await api.register(weight, filename="big.onnx")
    digest = hashlib.sha256(weight).hexdigest()
    assert model["weight"]["sha256"] == digest

    response = await api.http.get(f"/models/{model['id']}/weight")
    assert response.status_code == 200
    assert response.content == weight
    assert hashlib.sha256(response.content).hexdigest() == digest
    assert response.headers["content-length"] == str(len(weight))
    assert response.headers["etag"] == f'"{digest}"'
    assert "big.onnx" in response.headers["content-disposition"]

    head = await api.http.head(f"/models/{model['id']}/weight")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(weight))
    cached = await api.http.get(
        f"/models/{model['id']}/weight", headers={"if-none-match": f'"{digest}"'}
    )
    assert cached.status_code == 304 and cached.content == b""


async def test_download_errors(api: Api) -> None:
    malformed = await api.http.get("/models/nope/weight")
    assert malformed.status_code == 400
    assert malformed.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    unknown = await api.http.get("/models/0123456789abcdef01234567/weight")
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_identical_bytes_are_stored_once_and_kept_while_referenced(
    api: Api, settings: Settings
) -> None:
    shared = b"the same bytes"
    first = await api.register(shared)
    second = await api.register(shared, version=2)
    assert len(stored_blobs(settings)) == 1

    await api.data("mutation($id: ID!) { deleteModel(id: $id) { id } }", {"id": first["id"]})
    assert len(stored_blobs(settings)) == 1
    response = await api.http.get(f"/models/{second['id']}/weight")
    assert response.content == shared

    await api.data("mutation($id: ID!) { deleteModel(id: $id) { id } }", {"id": second["id"]})
    assert stored_blobs(settings) == []


async def test_client_file_names_never_reach_the_file_system(api: Api, settings: Settings) -> None:
    model = await api.register(b"x", filename="../../etc/passwd")
    assert model["weight"]["filename"] == "passwd"
    assert [path.name for path in stored_blobs(settings)] == [model["weight"]["sha256"]]


@pytest.fixture
def small_upload_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_upload_bytes": 64 * 1024})


async def test_uploads_over_the_cap_are_refused_and_store_nothing(
    small_upload_settings: Settings, mongodb_url: str
) -> None:
    app = create_app(small_upload_settings, mongodb_url=mongodb_url)
    async with serving(app) as api:
        request = multipart(REGISTER, {"input": model_input()}, {"weight": ("m", b"x" * 65 * 1024)})
        response = await api.http.post("/graphql", headers=PREFLIGHT, **request)
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

        # A body with no Content-Length is cut off as it passes the cap.
        body = api.http.build_request("POST", "/graphql", headers=PREFLIGHT, **request)
        body.read()
        chunks = [body.content[i : i + 8192] for i in range(0, len(body.content), 8192)]

        async def stream():  # type: ignore[no-untyped-def]
            for chunk in chunks:
                yield chunk

        headers = {"content-type": body.headers["content-type"], **PREFLIGHT}
        response = await api.http.post("/graphql", headers=headers, content=stream())
        assert response.status_code == 413

        assert await model_count(api) == 0
        await api.register(b"small enough")
    assert len(stored_blobs(small_upload_settings)) == 1
    assert staged_files(small_upload_settings) == []


async def test_multipart_requests_need_a_preflight_header(api: Api) -> None:
    request = multipart(REGISTER, {"input": model_input()}, {"weight": ("m.pt", b"w")})
    response = await api.http.post("/graphql", **request)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "apollo-require-preflight" in error["message"]
    assert await model_count(api) == 0


async def test_json_requests_over_the_cap_are_refused(api: Api, settings: Settings) -> None:
    huge = "{ models { edges { cursor } } }" + " " * settings.max_json_bytes
    response = await api.http.post("/graphql", json={"query": huge})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_leftovers_are_collected_at_start_up(settings: Settings, mongodb_url: str) -> None:
    app = create_app(settings, mongodb_url=mongodb_url)
    async with serving(app) as api:
        kept = await api.register(b"kept")
    # What a crash would leave: a half-written upload and committed bytes no model names.
    staged = settings.staging_dir / "0123abcd"
    staged.write_bytes(b"half an upload")
    orphan_sha = hashlib.sha256(b"orphan").hexdigest()
    orphan = settings.weights_dir / "blobs" / orphan_sha[:2] / orphan_sha
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"orphan")

    restarted = create_app(settings, mongodb_url=mongodb_url)
    async with serving(restarted) as api:
        assert staged_files(settings) == []  # before the first request
        assert await restarted.state.services.orphans == 1  # beside serving
        assert [path.name for path in stored_blobs(settings)] == [kept["weight"]["sha256"]]
        response = await api.http.get(f"/models/{kept['id']}/weight")
        assert response.content == b"kept"


@pytest.fixture
def gridfs_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"weight_store": "gridfs"})


async def test_gridfs_weight_store(gridfs_settings: Settings, mongodb_url: str) -> None:
    weight = os.urandom(3 * MiB + 7)
    async with serving(create_app(gridfs_settings, mongodb_url=mongodb_url)) as api:
        model = await api.register(weight)
        same = await api.register(weight, version=2)
        response = await api.http.get(f"/models/{model['id']}/weight")
        assert response.content == weight
        assert response.headers["etag"] == f'"{hashlib.sha256(weight).hexdigest()}"'

        for model_id in (model["id"], same["id"]):
            await api.data("mutation($id: ID!) { deleteModel(id: $id) { id } }", {"id": model_id})
        assert (await api.http.get(f"/models/{same['id']}/weight")).status_code == 404
    with MongoClient(mongodb_url) as client:
        database = client[gridfs_settings.database]
        assert database["weights.files"].count_documents({}) == 0
        assert database["weights.chunks"].count_documents({}) == 0
    assert not Path(gridfs_settings.weights_dir).exists()


async def test_two_servers_sharing_gridfs_keep_every_referenced_weight(
    gridfs_settings: Settings, mongodb_url: str
) -> None:
    """Replicas on one database: deletes race registrations of the same bytes."""
    weight = os.urandom(MiB + 5)
    delete = "mutation($id: ID!) { deleteModel(id: $id) { id } }"
    with MongoClient(mongodb_url) as client:  # a holder that died: its lease has run out
        locks = client[gridfs_settings.database]["weight_locks"]
        expired = datetime.now(UTC) - timedelta(minutes=5)
        locks.insert_one({"_id": hashlib.sha256(weight).hexdigest(), "until": expired})
    first, second = (create_app(gridfs_settings, mongodb_url=mongodb_url) for _ in range(2))
    async with serving(first) as one, serving(second) as other:
        servers = [one, other]
        models = await asyncio.gather(
            *(servers[v % 2].register(weight, version=v) for v in range(1, 7))
        )
        deleting = [
            servers[index % 2].data(delete, {"id": model["id"]})
            for index, model in enumerate(models[:3])
        ]
        registering = [servers[v % 2].register(weight, version=v) for v in range(7, 10)]
        results = await asyncio.gather(*deleting, *registering)
        kept = models[3:] + results[3:]
        for index, model in enumerate(kept):
            response = await servers[index % 2].http.get(f"/models/{model['id']}/weight")
            assert response.content == weight
        await asyncio.gather(
            *(servers[i % 2].data(delete, {"id": m["id"]}) for i, m in enumerate(kept))
        )
    with MongoClient(mongodb_url) as client:
        database = client[gridfs_settings.database]
        assert database["weights.files"].count_documents({}) == 0
        assert database["weight_locks"].count_documents({}) == 0


async def test_malformed_multipart_requests_are_refused_and_leave_nothing(
    api: Api, settings: Settings
) -> None:
    cases = [
        {"data": {"map": "{}"}, "files": {"0": ("w", b"bytes")}},  # no operations
        {"data": {"operations": "{not json", "map": "{}"}},
        {
            "data": {
                "operations": json.dumps({"query": REGISTER, "variables": {}}),
                "map": json.dumps({"9": ["variables.weight"]}),
            },
            "files": {"0": ("w", b"bytes")},
        },  # the map names a part that is not there
        {
            "data": {
                "operations": json.dumps({"query": REGISTER, "variables": {}}),
                "map": json.dumps({"0": ["variables.nowhere.deep"]}),
            },
            "files": {"0": ("w", b"bytes")},
        },
    ]
    for case in cases:
        response = await api.http.post("/graphql", headers=PREFLIGHT, **case)
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert staged_files(settings) == [] and stored_blobs(settings) == []
    assert await model_count(api) == 0
