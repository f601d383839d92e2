"""Free metadata on every model: metrics of any name, params, tags set and removed one at
a time, a description, a source and who registered it; a weight fixed once something was
made from it; variants that show their source's metrics. Through the GraphQL API, the
Python client and export/import."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REGISTER, Api, model_input, modelci_serve, serving
from starlette.applications import Starlette
from test_archive import Hub, rewritten, started, with_manifest
from test_choosing import convertible, variant_of

from modelci.client import AsyncModelHub, ModelHub
from modelci.core.domain import MAX_TAGS
from modelci.core.errors import BadUserInput, Conflict, NotFound
from modelci.core.identity import Scope
from modelci.server.app import create_app
from modelci.server.archive import ArchiveError, export_hub, import_hub
from modelci.server.embedded import free_port
from modelci.server.settings import Settings

METADATA = """
    id architecture version engine parentModelId createdBy description
    metric { name value }
    params { name value }
    tags { name value }
    source { uri runId }
"""
GET = "query($id: ID!) { model(id: $id) { %s } }" % METADATA
REGISTER_METADATA = (
    """
mutation($input: ModelInput!, $weight: Upload!) {
  registerModel(input: $input, weight: $weight, convert: false) { %s }
}"""
    % METADATA
)
UPDATE = (
    """
mutation($id: ID!, $input: ModelUpdateInput!, $weight: Upload) {
  updateModel(id: $id, input: $input, weight: $weight) { %s }
}"""
    % METADATA
)
SET_TAG = """
mutation($id: ID!, $name: String!, $value: String!) {
  setModelTag(id: $id, name: $name, value: $value) { tags { name value } }
}"""
DELETE_TAG = """
mutation($id: ID!, $name: String!) { deleteModelTag(id: $id, name: $name) { tags { name value } } }
"""
STATIC = """
mutation($id: ID!) {
  registerStaticProfilingResult(modelId: $id, result: {parameters: 1, flops: 2, memory: 3,
                                                       mread: 1, mwrite: 1, mrw: 2}) { id }
}"""
COUNT = "query($a: String) { models(architecture: $a, first: 100) { nodes { id } } }"

RICH = {
    "metric": [
        {"name": "acc", "value": 0.91},
        {"name": "top5", "value": 0.99},
        {"name": "val/loss", "value": -1.5e-3},
    ],
    "params": [{"name": "lr", "value": "0.1"}, {"name": "optimizer", "value": "sgd"}],
    "tags": [{"name": "team", "value": "vision"}, {"name": "stage.candidate", "value": ""}],
    "description": "# ResNet\n\nTrained **90 epochs**.\n\t- cosine schedule",
    "source": {"uri": "https://mlflow.example/#/experiments/1/runs/abc123", "runId": "abc123"},
}


async def register(api: Api, weight: bytes = b"weights", **fields: Any) -> dict[str, Any]:
    data = await api.data(
        REGISTER_METADATA, {"input": model_input(**fields)}, {"weight": ("model.bin", weight)}
    )
    model: dict[str, Any] = data["registerModel"]
    return model


async def models_named(api: Api, architecture: str) -> list[str]:
    data = await api.data(COUNT, {"a": architecture})
    return [node["id"] for node in data["models"]["nodes"]]


# The GraphQL API


async def test_free_metadata_is_stored_and_read_back(api: Api) -> None:
    model = await register(api, **RICH)
    for field in ("metric", "params", "tags", "description", "source"):
        assert model[field] == RICH[field], field
    assert model["createdBy"] == "anonymous"  # auth off
    assert (await api.data(GET, {"id": model["id"]}))["model"] == model

    # ML-Model-CI's names are plain names among others; none given is none stored.
    bare = await register(api, version=2, metric=[], description="")
    assert (bare["metric"], bare["params"], bare["tags"], bare["source"]) == ([], [], [], None)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"metric": [{"name": "top 5", "value": 1}]}, "input.metric.0.name"),
        ({"metric": [{"name": "", "value": 1}]}, "input.metric.0.name"),
        ({"metric": [{"name": "m" * 65, "value": 1}]}, "input.metric.0.name"),
        ({"metric": [{"name": f"m{i}", "value": i} for i in range(65)]}, "input.metric"),
        ({"metric": [{"name": "acc", "value": 1}, {"name": "acc", "value": 2}]}, "acc repeated"),
        ({"params": [{"name": "lr", "value": "1"}, {"name": "lr", "value": "2"}]}, "lr repeated"),
        ({"params": [{"name": f"p{i}", "value": ""} for i in range(257)]}, "input.params"),
        ({"params": [{"name": "lr", "value": "x" * 1025}]}, "input.params.0.value"),
        ({"tags": [{"name": f"t{i}", "value": ""} for i in range(MAX_TAGS + 1)]}, "input.tags"),
        ({"tags": [{"name": "team", "value": "\x1b[31mred"}]}, "input.tags.0.value"),
        ({"tags": [{"name": "a$b", "value": "x"}]}, "input.tags.0.name"),
        ({"description": "d" * (64 * 1024 + 1)}, "input.description"),
        ({"description": "bell\x07"}, "input.description"),
        ({"source": {"uri": "not a uri"}}, "input.source.uri"),
        ({"source": {"uri": "https://x/" + "y" * 2048}}, "input.source.uri"),
        ({"source": {"uri": "git+https://host/repo@abc", "runId": ""}}, "input.source.runId"),
    ],
)
async def test_metadata_out_of_bounds_is_refused_and_nothing_stored(
    api: Api, fields: dict[str, Any], named: str
) -> None:
    body = await api.post(
        REGISTER_METADATA,
        {"input": model_input(architecture="Bounded", **fields)},
        {"weight": ("model.bin", b"w")},
    )
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert named in error["message"].replace("run_id", "runId"), error["message"]
    assert await models_named(api, "Bounded") == []


async def test_an_infinite_metric_is_refused(api: Api) -> None:
    literal = REGISTER_METADATA.replace(
        "registerModel(input: $input",
        'registerModel(input: {architecture: "Inf", framework: PyTorch, engine: NONE, '
        'dataset: "d", task: Other, metric: [{name: "acc", value: 1e400}]}',
    ).replace("$input: ModelInput!, ", "")
    body = await api.post(literal, {}, {"weight": ("model.bin", b"w")})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await models_named(api, "Inf") == []


async def test_tags_are_set_and_removed_one_at_a_time(api: Api) -> None:
    model = await register(api, tags=[{"name": "team", "value": "vision"}])
    tag = {"id": model["id"]}
    tags = (await api.data(SET_TAG, tag | {"name": "stage", "value": "candidate"}))["setModelTag"]
    assert tags["tags"] == [
        {"name": "team", "value": "vision"},
        {"name": "stage", "value": "candidate"},
    ]
    replaced = await api.data(SET_TAG, tag | {"name": "team", "value": "nlp"})
    assert replaced["setModelTag"]["tags"][0] == {"name": "team", "value": "nlp"}
    removed = await api.data(DELETE_TAG, tag | {"name": "team"})
    assert removed["deleteModelTag"]["tags"] == [{"name": "stage", "value": "candidate"}]

    body = await api.post(DELETE_TAG, tag | {"name": "team"})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert "team" in body["errors"][0]["message"]
    for bad in ({"name": "a b", "value": "x"}, {"name": "ok", "value": "x" * 1025}):
        assert await api.error_code(SET_TAG, tag | bad) == "BAD_USER_INPUT"
    missing = {"id": "0123456789abcdef01234567", "name": "team", "value": "x"}
    assert await api.error_code(SET_TAG, missing) == "NOT_FOUND"
    assert (await api.data(GET, tag))["model"]["tags"] == [{"name": "stage", "value": "candidate"}]

    # Tags are not changed by updateModel (one at a time, so that two writers never
    # overwrite each other's).
    body = await api.post(UPDATE, tag | {"input": {"tags": []}})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "tags" in body["errors"][0]["message"]


async def test_tags_set_at_once_all_land_up_to_the_most_a_model_has(api: Api) -> None:
    model = await register(api)
    setting = [
        api.post(SET_TAG, {"id": model["id"], "name": f"t{index}", "value": str(index)})
        for index in range(MAX_TAGS + 6)
    ]
    answers = await asyncio.gather(*setting)
    refused = [answer["errors"][0] for answer in answers if answer.get("errors")]
    assert len(refused) == 6
    assert {error["extensions"]["code"] for error in refused} == {"CONFLICT"}
    assert f"{MAX_TAGS} tags" in refused[0]["message"]
    tags = (await api.data(GET, {"id": model["id"]}))["model"]["tags"]
    assert len(tags) == MAX_TAGS == len({tag["name"] for tag in tags})
    assert all(tag["value"] == tag["name"][1:] for tag in tags)
    # A tag it has is still replaced, the model being full.
    again = await api.data(SET_TAG, {"id": model["id"], "name": tags[0]["name"], "value": "new"})
    assert again["setModelTag"]["tags"][0]["value"] == "new"


async def test_update_changes_description_metrics_params_and_source(api: Api) -> None:
    model = await register(api, **RICH)
    changes = {
        "description": "retrained",
        "metric": [{"name": "acc", "value": 0.93}],
        "params": [{"name": "lr", "value": "0.05"}],
        "source": {"uri": "git+https://example.com/repo@4f2a9c1"},
    }
    updated = (await api.data(UPDATE, {"id": model["id"], "input": changes}))["updateModel"]
    assert updated["description"] == "retrained"
    assert updated["metric"] == changes["metric"] and updated["params"] == changes["params"]
    assert updated["source"] == {"uri": "git+https://example.com/repo@4f2a9c1", "runId": None}
    assert updated["tags"] == RICH["tags"] and updated["createdBy"] == "anonymous"
    for bad in ({"metric": [{"name": "a b", "value": 1}]}, {"description": None}):
        body = await api.post(UPDATE, {"id": model["id"], "input": bad})
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert (await api.data(GET, {"id": model["id"]}))["model"] == updated


async def test_a_variant_shows_its_sources_metrics_never_a_stale_copy(api: Api) -> None:
    source_id = await convertible(api, architecture="Lineage", **RICH)
    variant_id = await variant_of(api, source_id)
    variant = (await api.data(GET, {"id": variant_id}))["model"]
    assert variant["parentModelId"] == source_id and variant["version"] == 1
    for field in ("metric", "params", "description", "source", "tags"):
        assert variant[field] == RICH[field], field

    changes = {"metric": [{"name": "acc", "value": 0.5}], "description": "worse than hoped"}
    await api.data(UPDATE, {"id": source_id, "input": changes})
    variant = (await api.data(GET, {"id": variant_id}))["model"]
    assert variant["metric"] == changes["metric"]
    assert variant["description"] == "worse than hoped"

    # Two updates of the source at once: its variant ends with what the source has.
    await asyncio.gather(
        *(
            api.data(UPDATE, {"id": source_id, "input": {"metric": [{"name": "acc", "value": v}]}})
            for v in (0.1, 0.2, 0.3, 0.4)
        )
    )
    source = (await api.data(GET, {"id": source_id}))["model"]
    variant = (await api.data(GET, {"id": variant_id}))["model"]
    assert variant["metric"] == source["metric"]

    # A variant's metrics are its source's: changed there, not on the variant. Its tags
    # are its own.
    body = await api.post(UPDATE, {"id": variant_id, "input": {"metric": []}})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert source_id in error["message"]
    await api.data(SET_TAG, {"id": variant_id, "name": "runtime", "value": "onnx"})
    assert {"name": "runtime", "value": "onnx"} not in (await api.data(GET, {"id": source_id}))[
        "model"
    ]["tags"]


async def test_a_weight_is_replaced_only_until_something_is_made_from_it(api: Api) -> None:
    model = await register(api, b"first bytes", architecture="Fixed", version=3)
    replaced = await api.data(
        UPDATE, {"id": model["id"], "input": {}}, {"weight": ("model.bin", b"second bytes")}
    )
    assert replaced["updateModel"]["id"] == model["id"]  # nothing made from it yet: allowed

    await api.data(STATIC, {"id": model["id"]})
    body = await api.post(
        UPDATE, {"id": model["id"], "input": {}}, {"weight": ("model.bin", b"third bytes")}
    )
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "CONFLICT"
    message = error["message"]
    assert "version 3 of Fixed" in message and "static profile" in message
    assert "register" in message and "new version" in message and "get 4" in message
    download = await api.http.get(f"/models/{model['id']}/weight")
    assert download.content == b"second bytes"
    # Its other fields still change.
    described = await api.data(UPDATE, {"id": model["id"], "input": {"description": "kept"}})
    assert described["updateModel"]["description"] == "kept"


async def test_a_converted_models_weight_is_fixed_and_its_variants_too(api: Api) -> None:
    source_id = await convertible(api, architecture="Converted")
    variant_id = await variant_of(api, source_id)
    for model_id, says in ((source_id, "converted variant"), (variant_id, source_id)):
        body = await api.post(
            UPDATE, {"id": model_id, "input": {}}, {"weight": ("model.bin", b"other bytes")}
        )
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "CONFLICT", error
        assert says in error["message"]


async def test_created_by_is_the_registering_tokens_name(
    settings: Settings, mongodb_url: str
) -> None:
    secured = create_app(settings.model_copy(update={"auth": "on"}), mongodb_url=mongodb_url)
    async with serving(secured) as api:
        _, secret = await secured.state.services.tokens.create("ci-bot", [Scope.write, Scope.read])
        api.http.headers["authorization"] = f"Bearer {secret}"
        # The caller cannot say who registered it: createdBy is no input field.
        body = await api.post(
            REGISTER, {"input": model_input(createdBy="someone")}, {"weight": ("m.bin", b"w")}
        )
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        model = await register(api)
        assert model["createdBy"] == "ci-bot"


# The Python client


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelHub]:
    folder = tmp_path_factory.mktemp("hub")
    with modelci_serve(folder, free_port(), workers="0") as (url, _), ModelHub(url) as client:
        yield client


FIELDS = {
    "framework": "PyTorch",
    "engine": "NONE",
    "dataset": "ImageNet",
    "task": "Image_Classification",
}


def test_the_client_sends_the_metadata_it_is_given(hub: ModelHub) -> None:
    model = hub.register_model(
        b"weights",
        architecture="ClientNet",
        metrics={"acc": 0.91, "top5": 0.99, "epochs_run": 90},
        params={"lr": 0.1, "optimizer": "sgd", "nesterov": True},
        tags={"team": "vision"},
        description="# ClientNet",
        source="https://mlflow.example/#/runs/r1",
        run_id="r1",
        convert=False,
        **FIELDS,
    )
    assert [(m.name, m.value) for m in model.metric] == [
        ("acc", 0.91),
        ("top5", 0.99),
        ("epochs_run", 90.0),
    ]
    assert [(p.name, p.value) for p in model.params] == [
        ("lr", "0.1"),
        ("optimizer", "sgd"),
        ("nesterov", "True"),
    ]
    assert [(t.name, t.value) for t in model.tags] == [("team", "vision")]
    assert model.description == "# ClientNet" and model.created_by == "anonymous"
    assert model.source is not None
    assert (model.source.uri, model.source.run_id) == ("https://mlflow.example/#/runs/r1", "r1")
    assert model.version == 1  # left out: the hub numbered it

    updated = hub.update_model(
        model.id, metrics=[{"name": "acc", "value": 0.95}], params={"lr": "0.01"}
    )
    assert [(m.name, m.value) for m in updated.metric] == [("acc", 0.95)]
    assert [(p.name, p.value) for p in updated.params] == [("lr", "0.01")]
    assert hub.get_by_id(model.id) == updated

    tagged = hub.set_tag(model.id, "stage", "prod")
    assert [(t.name, t.value) for t in tagged.tags] == [("team", "vision"), ("stage", "prod")]
    assert [t.name for t in hub.remove_tag(model.id, "team").tags] == ["stage"]
    with pytest.raises(NotFound, match="team"):
        hub.remove_tag(model.id, "team")


def test_the_client_refuses_what_it_cannot_send(hub: ModelHub) -> None:
    model = hub.register_model(b"w", architecture="Refusals", convert=False, **FIELDS)
    with pytest.raises(TypeError, match="metricz"):
        hub.register_model(b"w", architecture="Refusals", metricz={"acc": 1}, **FIELDS)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="tags"):
        hub.update_model(model.id, tags={"team": "x"})  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"weight.*metric=…"):
        hub.update_model(model.id, {"metric": [{"name": "acc", "value": 1}]})  # type: ignore[arg-type]
    with pytest.raises(BadUserInput, match="acc"):
        hub.update_model(model.id, metrics={"acc": True})
    with pytest.raises(BadUserInput, match="acc"):
        hub.update_model(model.id, metrics={"acc": "high"})
    with pytest.raises(BadUserInput, match="run_id"):
        hub.update_model(model.id, run_id="r2")
    with pytest.raises(TypeError, match="metrics"):
        hub.update_model(model.id, metrics=0.9)  # type: ignore[arg-type]
    with pytest.raises(BadUserInput, match="metrics"):
        hub.update_model(model.id, metrics={"top 5": 0.9})
    assert hub.get_by_id(model.id).metric == []
    # ML-Model-CI's spelling still works.
    assert hub.update_model(model.id, metric=[{"name": "acc", "value": 0.7}]).metric[0].value == 0.7


def test_the_client_says_to_register_a_new_version_for_a_new_weight(hub: ModelHub) -> None:
    model = hub.register_model(b"v1 bytes", architecture="Immutable", convert=False, **FIELDS)
    hub.register_static_profiling_result(
        model.id, {"parameters": 1, "flops": 2, "memory": 3, "mread": 1, "mwrite": 1, "mrw": 2}
    )
    with pytest.raises(Conflict, match="leave version out to get 2"):
        hub.update_model(model.id, b"retrained bytes")
    again = hub.register_model(b"retrained bytes", architecture="Immutable", **FIELDS)
    assert again.version == 2


def test_the_async_client_sets_and_removes_tags(hub: ModelHub) -> None:
    async def tagged() -> list[str]:
        async with AsyncModelHub(hub.url) as client:
            model = await client.register_model(
                b"w", architecture="AsyncTags", convert=False, tags={"a": "1"}, **FIELDS
            )
            await client.set_tag(model.id, "b", "2")
            removed = await client.remove_tag(model.id, "a")
            return [tag.name for tag in removed.tags]

    assert asyncio.run(tagged()) == ["b"]


# Export and import


@pytest.fixture
async def source(app: Starlette, settings: Settings) -> AsyncIterator[Hub]:
    async with started(app, settings) as hub:
        yield hub


@pytest.fixture
async def target(tmp_path: Path, settings: Settings, mongodb_url: str) -> AsyncIterator[Hub]:
    moved = settings.model_copy(
        update={"database": settings.database + "_target", "data_dir": tmp_path / "target"}
    )
    async with started(create_app(moved, mongodb_url=mongodb_url), moved) as hub:
        yield hub
        await hub.services.db.client.drop_database(moved.database)


async def test_metadata_travels_in_an_archive_and_is_checked_on_import(
    source: Hub, target: Hub, tmp_path: Path
) -> None:
    model = await register(source.api, os.urandom(1024), **RICH)
    await source.api.data(SET_TAG, {"id": model["id"], "name": "stage", "value": "prod"})
    archive = tmp_path / "hub.tar"
    await export_hub(source.services.db, source.services.weights, archive)
    imported = await import_hub(
        target.services.db, target.services.weights, archive, target.settings
    )
    assert imported.models == 1
    moved = (await target.api.data(GET, {"id": model["id"]}))["model"]
    assert moved == (await source.api.data(GET, {"id": model["id"]}))["model"]
    assert moved["createdBy"] == "anonymous" and moved["tags"][-1]["name"] == "stage"

    with tarfile.open(archive) as tar:
        models = tar.extractfile("models.jsonl").read()  # type: ignore[union-attr]
    document = json.loads(models)
    document["tags"] = [{"name": "a b", "value": "x"}]
    broken = (json.dumps(document) + "\n").encode()

    def manifest(content: dict[str, Any]) -> None:
        content["models"]["sha256"] = hashlib.sha256(broken).hexdigest()
        content["models"]["size"] = len(broken)

    def change(name: str, content: bytes) -> tuple[str, bytes]:
        if name == "models.jsonl":
            return name, broken
        return with_manifest(manifest)(name, content)  # type: ignore[no-any-return]

    damaged = rewritten(archive, tmp_path / "damaged.tar", change)
    with pytest.raises(ArchiveError, match="tags"):
        await import_hub(target.services.db, target.services.weights, damaged, target.settings)
