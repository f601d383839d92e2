"""The read model answers every filter shape the API has as the database does: the same
models, in the same order, with the same cursors' pages and page flags.

Models of every shape are written straight into the database (the registry's layout,
with varied names, statuses, tags, params, metrics, creation times over years, variants
and dynamic results with and without a p99); each filter is read from memory and from
the database with the hub's own listing, page by page both ways.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from conftest import Api, serving
from pymongo import AsyncMongoClient, MongoClient

from modelci.core.domain import ModelFilter, ModelWhere, ProfileFilter
from modelci.core.ports import PageRequest
from modelci.server.app import create_app
from modelci.server.embedded import free_port
from modelci.server.listing import Listing
from modelci.server.model_query import models_query
from modelci.server.read_model import (
    ReadModel,
    Unknown,
    WriteTimes,
    held_cost,
    read_after_var,
)
from modelci.server.services import prepared_database
from modelci.server.settings import Settings
from modelci.server.storage import MODELS

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ARCHITECTURES = ["ResNet50", "resnet18", "ResNet50-v2", "ViT-B/16", "bert-base", "Ünï*code.(x)"]
TASKS = ["Image_Classification", "Text_Classification", "Object_Detection"]
DATASETS = ["ImageNet", "CIFAR-10", "imagenet-21k", "SQuAD"]
STATUSES = ["PUBLISHED", "CONVERTED", "PROFILING", "DRAFT"]
DEVICES = [("cpu", "Intel Xeon"), ("cuda:0", "NVIDIA A100-SXM4-40GB"), ("cuda:1", "NVIDIA T4")]


def dynamic_result(chance: random.Random) -> dict[str, Any]:
    device_id, device_name = chance.choice(DEVICES)
    latency: dict[str, Any] = {"p50": round(chance.uniform(0.001, 0.05), 4)}
    if chance.random() < 0.7:
        latency["p99"] = round(latency["p50"] * chance.uniform(1, 3), 4)
    elif chance.random() < 0.5:
        latency["p99"] = None
    result: dict[str, Any] = {
        "ip": chance.choice(["10.0.0.1", "10.0.0.2"]),
        "device_id": device_id,
        "device_name": device_name,
        "batch": chance.choice([1, 2, 8, 32]),
        "latency": {"inference_latency": latency},
        "throughput": {"inference_throughput": round(chance.uniform(10, 5000), 1)},
    }
    if chance.random() < 0.8:
        result["measurement"] = {"stable": chance.random() < 0.6}
    return result


def entries(chance: random.Random, names: list[str], values: list[Any]) -> list[dict[str, Any]]:
    picked = chance.sample(names, chance.randint(0, len(names)))
    return [{"name": name, "value": chance.choice(values)} for name in picked]


def documents(count: int, seed: int = 29, first_version: int = 1) -> list[dict[str, Any]]:
    """Models of every shape, each its own version (the registry's key is unique)."""
    chance = random.Random(seed)
    found: list[dict[str, Any]] = []
    for index in range(count):
        created = NOW - timedelta(days=chance.choice([0, 0, 1, 30, 400, 3000]))
        created += timedelta(seconds=chance.randint(-3600, 3600))
        if index % 17 == 0:
            created = NOW + timedelta(days=365)  # a clock running ahead
        parent = chance.choice(found)["_id"] if found and chance.random() < 0.2 else None
        found.append(
            {
                # The creation time, and a unique rest: ids in the order of their times.
                "_id": ObjectId(ObjectId.from_datetime(created).binary[:4] + ObjectId().binary[4:]),
                "architecture": chance.choice(ARCHITECTURES),
                "framework": chance.choice(["PyTorch", "ONNX"]),
                "engine": chance.choice(["NONE", "ONNX", "TORCHSCRIPT"]),
                "version": first_version + index,
                "task": chance.choice(TASKS),
                "dataset": chance.choice(DATASETS),
                "model_status": chance.sample(STATUSES, chance.randint(1, 2)),
                "parent_model_id": None if parent is None else str(parent),
                "create_time": created,
                "tags": entries(chance, ["team", "stage", "deprecated"], ["vision", "nlp", ""]),
                "params": entries(chance, ["lr", "epochs"], ["0.1", "0.01", "90"]),
                "metric": entries(chance, ["acc", "top5", "f1"], [0.5, 0.75, 0.8, 0.93, 1]),
                "profile_result": {
                    "static_result": None,
                    "dynamic_results": [
                        dynamic_result(chance) for _ in range(chance.choice([0, 0, 1, 2, 3]))
                    ],
                },
            }
        )
    return found


def where(**given: Any) -> ModelFilter:
    return ModelFilter(where=ModelWhere.model_validate(given))


def acc(**bounds: float) -> dict[str, Any]:
    return {"metrics": [{"name": "acc", **bounds}]}


def tag(name: str, **condition: Any) -> dict[str, Any]:
    return {"tags": [{"name": name, **condition}]}


FILTERS: list[ModelFilter] = [
    ModelFilter(),
    # The legacy arguments.
    ModelFilter(architecture="ResNet50"),
    ModelFilter(architecture="resnet50"),  # exact, case and all
    ModelFilter(task="Text_Classification", dataset="SQuAD"),
    ModelFilter(framework="ONNX", engine="ONNX"),
    ModelFilter(version=3),
    ModelFilter(status="CONVERTED"),
    ModelFilter(architecture="nothing-like-it"),
    # The profile filter, each condition and together.
    ModelFilter(profile=ProfileFilter()),
    ModelFilter(profile=ProfileFilter(device="cpu")),
    ModelFilter(profile=ProfileFilter(device="cuda:1")),
    ModelFilter(profile=ProfileFilter(device="NVIDIA T4")),
    ModelFilter(profile=ProfileFilter(device_kind="CPU")),
    ModelFilter(profile=ProfileFilter(device_kind="CUDA", min_batch=2, max_batch=8)),
    ModelFilter(profile=ProfileFilter(batch=8)),
    ModelFilter(profile=ProfileFilter(max_p99_latency=0.03)),
    ModelFilter(profile=ProfileFilter(max_p50_latency=0.01, min_throughput=1000)),
    ModelFilter(profile=ProfileFilter(stable_only=True, device_kind="CUDA")),
    ModelFilter(architecture="ResNet50", profile=ProfileFilter(max_p99_latency=0.05)),
    # Searches: text.
    where(architecture={"equals": "ResNet50"}),
    where(architecture={"prefix": "RESNET"}),
    where(architecture={"contains": "net"}),
    where(architecture={"contains": "*code.("}),  # pattern characters taken literally
    where(architecture={"prefix": "ÜNÏ"}),
    where(dataset={"prefix": "imagenet"}),
    where(dataset={"equals": "imagenet"}),
    # Enums and versions.
    where(task="Image_Classification", framework="PyTorch", engine="NONE"),
    where(status="PUBLISHED"),
    where(version={"eq": 2}),
    where(**{"or": [{"version": {"eq": 2}}, {"version": {"eq": 3}}]}),
    where(version={"gt": 20, "lte": 50}),
    where(version={"lt": 12}),
    # Tags, params, metrics.
    where(**tag("team")),
    where(**tag("team", equals="vision")),
    where(**tag("team", equals="")),
    where(**tag("team", exists=False)),
    where(tags=[{"name": "team", "equals": "nlp"}, {"name": "stage"}]),
    where(params=[{"name": "lr", "equals": "0.1"}]),
    where(params=[{"name": "epochs", "exists": False}]),
    where(**acc()),
    where(**acc(gte=0.75)),
    where(**acc(gt=0.75, lt=0.93)),
    where(**acc(eq=1)),
    where(metrics=[{"name": "acc", "gt": 0.7}, {"name": "top5", "gte": 0.93}]),
    # Time.
    where(created={"after": NOW - timedelta(days=31)}),
    where(created={"before": NOW - timedelta(days=399)}),
    where(created={"after": NOW - timedelta(days=3001), "before": NOW}),
    # A profile condition in a search.
    where(profile={"device": "cuda:0", "max_p99_latency": 0.04}),
    where(profile={"device_kind": "CPU"}, **tag("stage")),
    # and / or / not.
    where(**{"or": [tag("team", equals="nlp"), acc(gt=0.8)]}),
    where(architecture={"prefix": "resnet"}, **{"or": [tag("team", equals="nlp"), acc(lt=0.75)]}),
    where(
        **{
            "and": [
                {"or": [{"task": "Text_Classification"}, {"dataset": {"equals": "CIFAR-10"}}]},
                {"or": [tag("team", equals="nlp"), tag("deprecated")]},
            ]
        }
    ),
    where(**{"not": {"or": [tag("team", equals="vision"), acc(gte=0.8)]}}),
    where(**{"and": [acc(gt=0.7), {"not": acc(gt=0.8)}]}),
    where(**{"not": {"profile": {"device_kind": "CUDA"}}}),
    where(
        **{
            "and": [
                {"or": [{"architecture": {"equals": name}} for name in ARCHITECTURES[:4]]},
                {"or": [{"version": {"lt": 30}}, {"version": {"eq": 40}}, {"version": {"gt": 90}}]},
                {"or": [tag("team"), {"not": tag("team")}]},
            ]
        }
    ),
    # Legacy arguments, a profile filter and a search at once.
    ModelFilter(
        task="Image_Classification",
        profile=ProfileFilter(device_kind="CUDA"),
        where=ModelWhere.model_validate({"or": [acc(gte=0.8), tag("stage")]}),
    ),
]


def read_model_on(db: Any, mongodb_url: str, budget: int = 64 * 2**20) -> ReadModel:
    return ReadModel(mongodb_url, db.name, {"tz_aware": True}, WriteTimes(), budget, wait_s=5)


@pytest.fixture
async def database(
    settings: Settings, mongodb_url: str
) -> AsyncIterator[tuple[Any, Listing, list[dict[str, Any]]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        db = client[settings.database]
        listing = await prepared_database(db)
        seeded = documents(160)
        await db[MODELS].insert_many(seeded)
        yield db, listing, seeded, mongodb_url
    finally:
        await client.close()


async def followed(read_model: ReadModel) -> ReadModel:
    read_model.start()
    while not read_model.serving:
        await read_model.progress.wait()
    return read_model


async def caught_up(read_model: ReadModel, db: Any) -> None:
    """Until the read model has applied every write made so far, as a request carrying
    the database's time now waits for it."""
    token = read_after_var.set((await db.command("ping"))["operationTime"])
    try:
        assert await read_model.current() is None
    finally:
        read_after_var.reset(token)


def ids(found: list[Any]) -> list[str]:
    return [str(document["_id"]) for document in found]


async def pages_agree(
    read_model: ReadModel, db: Any, listing: Listing, wanted: ModelFilter, size: int
) -> int:
    """Every forward page, then backward pages from the end, read both ways; the number
    of models seen."""
    query = models_query(wanted)
    collection = db[MODELS].with_options(
        codec_options=db.codec_options.with_options(document_class=RawBSONDocument)
    )
    seen = 0
    after: str | None = None
    cursors: list[str] = []
    while True:
        request = PageRequest(first=size, after=after)
        memory = read_model.page(query, request)
        assert not isinstance(memory, Unknown), wanted
        stored = await listing.page(collection, query, request)
        assert (ids(memory[0]), memory[1:]) == (ids(stored[0]), stored[1:]), wanted
        seen += len(memory[0])
        if not memory[0] or not memory[1]:
            break
        after = str(memory[0][-1]["_id"])
        cursors.append(after)
    for before in [None, *cursors[-2:]]:
        request = PageRequest(last=size, before=before)
        memory = read_model.page(query, request)
        assert not isinstance(memory, Unknown), wanted
        stored = await listing.page(collection, query, request)
        assert (ids(memory[0]), memory[1:]) == (ids(stored[0]), stored[1:]), (wanted, before)
    return seen


async def test_every_filter_shape_reads_as_the_database_does(database: Any) -> None:
    db, listing, seeded, url = database
    read_model = await followed(read_model_on(db, url))
    try:
        assert len(read_model.held.models) == len(seeded)
        found = [await pages_agree(read_model, db, listing, wanted, 7) for wanted in FILTERS]
        parents = {document["parent_model_id"] for document in seeded} - {None}
        for parent in sorted(parents)[:3]:  # a source's variants
            assert await pages_agree(
                read_model, db, listing, ModelFilter(parent_model_id=parent), 2
            )
        assert found[0] == len(seeded)
        # Every filter but three that match nothing on purpose finds some, not all.
        assert sum(1 for count in found if 0 < count < len(seeded)) == len(FILTERS) - 4
    finally:
        await read_model.close()


async def test_changes_are_followed_and_read_back_alike(database: Any) -> None:
    """Inserts, updates of each kind and deletes made by another client are applied in
    order; the answers stay the database's."""
    db, listing, seeded, url = database
    read_model = await followed(read_model_on(db, url))
    try:
        models = db[MODELS]
        extra = documents(20, seed=3, first_version=1000)
        await models.insert_many(extra)
        await models.update_many({"architecture": "ResNet50"}, {"$set": {"architecture": "X"}})
        await models.update_one(
            {"_id": seeded[3]["_id"]},
            {"$push": {"tags": {"name": "team", "value": "vision"}}},
        )
        await models.delete_many({"task": "Object_Detection", "version": {"$lt": 60}})
        await models.replace_one({"_id": seeded[5]["_id"]}, {**seeded[5], "version": 999})
        await caught_up(read_model, db)
        for wanted in [*FILTERS[:8], ModelFilter(architecture="X"), ModelFilter(version=999)]:
            await pages_agree(read_model, db, listing, wanted, 9)
    finally:
        await read_model.close()


async def test_past_its_budget_memory_holds_the_newest_and_says_what_it_cannot_answer(
    database: Any,
) -> None:
    db, _, seeded, url = database
    budget = sum(held_cost(len(bson.encode(document))) for document in seeded) // 2
    read_model = await followed(read_model_on(db, url, budget))
    try:
        held = read_model.held
        assert 0 < len(held.models) < len(seeded)
        newest = sorted(seeded, key=lambda document: document["_id"], reverse=True)
        assert set(held.models) == {
            document["_id"].binary for document in newest[: len(held.models)]
        }
        assert read_model.report()["complete"] is False
        # A first page of everything is within what is held; the last page is not.
        assert not isinstance(read_model.page({}, PageRequest(first=5)), Unknown)
        oldest = str(newest[-2]["_id"])
        assert isinstance(read_model.page({}, PageRequest(first=5, after=oldest)), Unknown)
        assert isinstance(read_model.model(oldest), Unknown)
        assert isinstance(read_model.children([str(newest[0]["_id"])]), Unknown)
    finally:
        await read_model.close()


# Through the API: a hub past its budget, a hub on a server without change streams.

SEARCH = """
query Search($first: Int, $after: String, $last: Int, $before: String, $where: ModelWhereInput,
             $architecture: String) {
  models(first: $first, after: $after, last: $last, before: $before, where: $where,
         architecture: $architecture) {
    nodes { id version architecture tags { name value } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def every_page(api: Api, **arguments: Any) -> list[dict[str, Any]]:
    """Each page's answer, forward to the end and back from the end."""
    answers: list[dict[str, Any]] = []
    after = None
    while True:
        answer = (await api.data(SEARCH, {"first": 50, "after": after, **arguments}))["models"]
        answers.append(answer)
        if not answer["pageInfo"]["hasNextPage"]:
            break
        after = answer["pageInfo"]["endCursor"]
    answers.append((await api.data(SEARCH, {"last": 30, **arguments}))["models"])
    return answers


async def readiness(api: Api) -> dict[str, Any]:
    body: dict[str, Any] = (await api.http.get("/readyz")).json()
    return body


async def test_past_its_budget_a_hub_answers_as_the_database_and_says_so(
    settings: Settings, mongodb_url: str
) -> None:
    """The newest models are held; pages reaching older ones are read from the database,
    the same answers as a hub that holds none; /readyz and /metrics say so."""
    memory_app = create_app(settings.model_copy(update={"read_model_mb": 1}), mongodb_url)
    database_app = create_app(settings.model_copy(update={"read_model_mb": 0}), mongodb_url)
    async with serving(memory_app) as memory, serving(database_app) as database:
        template = await memory.register(version=1)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
        try:
            models = client[settings.database][MODELS]
            stored = await models.find_one({"_id": ObjectId(template["id"])})
            assert stored is not None
            chance = random.Random(5)
            await models.insert_many(
                [
                    stored
                    | {
                        "_id": ObjectId(),
                        "version": version,
                        "architecture": chance.choice(["ResNet50", "ViT"]),
                        "tags": [{"name": "team", "value": chance.choice(["a", "b"])}],
                    }
                    for version in range(2, 402)
                ]
            )
            await memory.sees_database(client)
        finally:
            await client.close()
        for arguments in (
            {},
            {"architecture": "ViT"},
            {"where": {"tags": [{"name": "team", "equals": "a"}], "version": {"gt": 100}}},
        ):
            assert await every_page(memory, **arguments) == await every_page(
                database, **arguments
            ), arguments

        state = (await readiness(memory))["readModel"]
        assert state["state"] == "serving" and state["complete"] is False, state
        assert 0 < state["models"] < 401 and state["bytes"] <= state["budgetBytes"], state
        assert state["reads"]["memory"] > 0 and state["reads"]["not_held"] > 0, state
        assert (await readiness(database))["readModel"]["state"] == "off"
        metrics = (await memory.http.get("/metrics")).text
        assert "modelci_read_model_complete 0.0" in metrics
        assert 'modelci_reads_total{answered_by="not_held"}' in metrics


@pytest.fixture
def standalone_url(tmp_path: Path) -> Iterator[str]:
    """SecantusDB as a standalone server: no replica set, so no change streams."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "secantus", "--standalone", "--log-level", "WARNING"),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--storage-path", str(tmp_path / "standalone")),
        ],
    )
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        with MongoClient(url, serverSelectionTimeoutMS=30_000) as client:
            client.admin.command("ping")  # waits for it to listen
        yield url
    finally:
        process.kill()
        process.wait()


async def test_on_a_server_without_change_streams_reads_go_to_the_database(
    settings: Settings, standalone_url: str
) -> None:
    app = create_app(settings, standalone_url)
    async with serving(app) as api:
        read_model = app.state.services.read_model
        while read_model.state != "off":
            await read_model.progress.wait()
        model = await api.register(version=1)
        found = await api.data(SEARCH, {"first": 5})
        assert [node["id"] for node in found["models"]["nodes"]] == [model["id"]]
        state = (await readiness(api))["readModel"]
        assert state["state"] == "off" and "replica set" in state["why"], state
        assert state["reads"].get("memory", 0) == 0 and state["reads"]["off"] > 0, state


async def test_a_dropped_collection_is_loaded_again(database: Any) -> None:
    """A change the stream cannot carry on from (the collection dropped and filled again,
    as a restore does) makes the read model load everything again, not serve a gap."""
    db, listing, _, url = database
    read_model = await followed(read_model_on(db, url))
    try:
        await db[MODELS].drop()
        restored = documents(30, seed=11, first_version=5000)
        await db[MODELS].insert_many(restored)
        while read_model.loads < 2 or not read_model.serving:
            await read_model.progress.wait()
        await caught_up(read_model, db)
        assert await pages_agree(read_model, db, listing, ModelFilter(), 8) == len(restored)
    finally:
        await read_model.close()
