"""Concurrent clients: the unique index decides, and nothing is left half-written."""

from __future__ import annotations

import asyncio

from conftest import REGISTER, Api, dynamic_result, model_input, serving
from starlette.applications import Starlette
from test_errors import model_count, staged_files, stored_blobs
from test_model_service import GET_MODEL, UPDATE_DYNAMIC, UPDATE_MODEL

from modelci.server.app import create_app
from modelci.server.settings import Settings
from modelci.server.storage import MEMORY_PER_STORED_BYTE


async def test_twenty_identical_registrations_leave_one_model(api: Api, settings: Settings) -> None:
    async def register(index: int) -> dict:
        files = {"weight": ("m.pt", f"weights from client {index}".encode())}
        return await api.post(REGISTER, {"input": model_input()}, files)

    bodies = await asyncio.gather(*(register(index) for index in range(20)))
    winners = [body for body in bodies if not body.get("errors")]
    codes = [body["errors"][0]["extensions"]["code"] for body in bodies if body.get("errors")]
    assert len(winners) == 1
    assert codes == ["CONFLICT"] * 19
    assert await model_count(api) == 1
    # Only the winner's bytes stay.
    winner_sha = winners[0]["data"]["registerModel"]["weight"]["sha256"]
    assert [path.name for path in stored_blobs(settings)] == [winner_sha]
    assert staged_files(settings) == []


async def test_concurrent_updates_of_distinct_fields_are_all_kept(api: Api) -> None:
    model = await api.register()
    changes = [
        {"creator": "alice"},
        {"metric": [{"name": "acc", "value": 0.9}]},
        {"modelStatus": ["IN_SERVICE"]},
        {"outputs": [{"name": "logits", "shape": [-1, 10]}]},
    ]
    await asyncio.gather(
        *(api.data(UPDATE_MODEL, {"id": model["id"], "input": change}) for change in changes)
    )
    stored = (await api.data(GET_MODEL, {"id": model["id"]}))["model"]
    assert stored["creator"] == "alice"
    assert stored["metric"] == [{"name": "acc", "value": 0.9}]
    assert stored["modelStatus"] == ["IN_SERVICE"]
    assert stored["outputs"][0]["name"] == "logits"


async def test_concurrent_upserts_of_one_dynamic_result_keep_one(api: Api) -> None:
    model = await api.register()
    results = [dynamic_result(batch=8, p50=0.001 * (i + 1)) for i in range(10)]
    await asyncio.gather(
        *(
            api.data(UPDATE_DYNAMIC, {"id": model["id"], "result": result, "force": True})
            for result in results
        )
    )
    stored = (await api.data(GET_MODEL, {"id": model["id"]}))["model"]
    assert [r["batch"] for r in stored["profileResult"]["dynamicResults"]] == [8]


async def test_fifty_concurrent_mixed_requests_leave_the_database_consistent(
    api: Api, settings: Settings
) -> None:
    target = await api.register(b"target weights")
    fields = ["creator", "dataset", "metric", "modelStatus", "outputs"]
    changes = {
        "creator": "carol",
        "dataset": "ImageNet-21k",
        "metric": [{"name": "acc", "value": 0.91}],
        "modelStatus": ["IN_SERVICE"],
        "outputs": [{"name": "probabilities", "shape": [-1, 1000]}],
    }

    def request(index: int):  # type: ignore[no-untyped-def]
        kind = index % 5
        if kind == 0:  # registrations, half of them the same key
            version = 100 if index % 10 == 0 else 200 + index
            return api.post(
                REGISTER,
                {"input": model_input(version=version)},
                {"weight": ("m.pt", f"weights {index}".encode())},
            )
        if kind in (1, 2):  # updates of distinct fields of the same model
            field = fields[(index // 5) % len(fields)]
            return api.post(UPDATE_MODEL, {"id": target["id"], "input": {field: changes[field]}})
        # upserts of the same dynamic result key
        result = dynamic_result(batch=4, p50=0.001 * (index + 1))
        return api.post(UPDATE_DYNAMIC, {"id": target["id"], "result": result, "force": True})

    bodies = await asyncio.gather(*(request(index) for index in range(50)))
    codes = {body["errors"][0]["extensions"]["code"] for body in bodies if body.get("errors")}
    assert codes <= {"CONFLICT"}  # only the duplicate registrations may lose

    stored = (await api.data(GET_MODEL, {"id": target["id"]}))["model"]
    assert stored["creator"] == "carol"
    assert stored["dataset"] == "ImageNet-21k"
    assert stored["metric"] == [{"name": "acc", "value": 0.91}]
    assert stored["modelStatus"] == ["IN_SERVICE"]
    assert stored["outputs"][0]["name"] == "probabilities"
    assert [r["batch"] for r in stored["profileResult"]["dynamicResults"]] == [4]

    data = await api.data("{ models(first: 100) { nodes { id version weight { sha256 } } } }")
    models = data["models"]["nodes"]
    assert len({model["version"] for model in models}) == len(models)  # no duplicate keys
    referenced = {model["weight"]["sha256"] for model in models}
    assert {path.name for path in stored_blobs(settings)} == referenced  # no orphans
    assert staged_files(settings) == []


async def test_a_model_changed_by_another_server_process_is_read_as_changed(
    api: Api, settings: Settings, mongodb_url: str
) -> None:
    """Each server process keeps the models it has read (``kept_models_mb``); a change
    made through another process on the same database shows at once, in a get and in a
    page, and so does a deletion."""
    model = await api.register()
    listed = "query { models(first: 10) { nodes { id creator } } }"
    assert (await api.data(GET_MODEL, {"id": model["id"]}))["model"]["creator"] == "tester"
    assert (await api.data(listed))["models"]["nodes"][0]["creator"] == "tester"

    async with serving(create_app(settings, mongodb_url=mongodb_url)) as other:
        await other.data(UPDATE_MODEL, {"id": model["id"], "input": {"creator": "alice"}})
        assert (await api.data(GET_MODEL, {"id": model["id"]}))["model"]["creator"] == "alice"
        assert (await api.data(listed))["models"]["nodes"][0]["creator"] == "alice"
        await other.data("mutation($id: ID!) { deleteModel(id: $id) { id } }", {"id": model["id"]})
    assert await api.error_code(GET_MODEL, {"id": model["id"]}) == "NOT_FOUND"
    assert (await api.data(listed))["models"]["nodes"] == []


async def test_kept_models_stay_within_their_memory(api: Api, app: Starlette) -> None:
    """A process keeps no more read models than ``kept_models_mb`` allows; what it reads
    past that is still right."""
    for version in range(1, 13):
        await api.register(weight=f"weights {version}".encode(), version=version)
    # Each registration's event waits in its document's outbox until the relay publishes
    # it: published first, so that the documents read are all alike.
    await app.state.services.relay.flush()
    everything = "query { models(first: 20) { nodes { id version } } }"
    await api.data(everything)
    documents = app.state.services.registry.documents
    sizes = {len(document) for document in documents.kept}
    assert len(documents.kept) == 12 and len(sizes) == 1  # all alike: room for exactly 4
    documents.memory_bytes = 4 * sizes.pop() * MEMORY_PER_STORED_BYTE
    documents.kept.clear()
    documents.kept_bytes = 0
    for _ in range(2):
        nodes = (await api.data(everything))["models"]["nodes"]
        assert [node["version"] for node in nodes] == list(range(12, 0, -1))
        assert len(documents.kept) == 4
        assert documents.kept_bytes <= documents.memory_bytes
