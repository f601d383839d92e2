"""ML-Model-CI's model service tests, by their names there, each driving the GraphQL API
as a client would."""

from __future__ import annotations

import hashlib

from conftest import MODEL_FIELDS, Api, dynamic_result

GET_MODEL = "query Get($id: ID!) { model(id: $id) { %s } }" % MODEL_FIELDS

LIST_MODELS = """
query List($architecture: String, $task: Task, $first: Int! = 20, $after: String) {
  models(architecture: $architecture, task: $task, first: $first, after: $after) {
    edges { cursor node { id architecture task version } }
    pageInfo { hasNextPage endCursor }
  }
}"""

UPDATE_MODEL = (
    """
mutation Update($id: ID!, $input: ModelUpdateInput!, $weight: Upload) {
  updateModel(id: $id, input: $input, weight: $weight) { %s }
}"""
    % MODEL_FIELDS
)

REGISTER_STATIC = """
mutation Static($id: ID!, $result: StaticProfileResultInput!) {
  registerStaticProfilingResult(modelId: $id, result: $result) {
    profileResult { staticResult { parameters flops memory mread mwrite mrw } }
  }
}"""

DYNAMIC_FIELDS = """
profileResult { dynamicResults { ip deviceId batch latency { inferenceLatency { p50 } } } }
"""

REGISTER_DYNAMIC = (
    """
mutation Dynamic($id: ID!, $result: DynamicProfileResultInput!) {
  registerDynamicProfilingResult(modelId: $id, result: $result) { %s }
}"""
    % DYNAMIC_FIELDS
)

UPDATE_DYNAMIC = (
    """
mutation UpdateDynamic($id: ID!, $result: DynamicProfileResultInput!, $force: Boolean! = false) {
  updateDynamicProfilingResult(modelId: $id, result: $result, forceInsert: $force) { %s }
}"""
    % DYNAMIC_FIELDS
)

DELETE_DYNAMIC = (
    """
mutation DeleteDynamic($id: ID!, $ip: String!, $deviceId: String!, $batch: Int) {
  deleteDynamicProfilingResult(modelId: $id, ip: $ip, deviceId: $deviceId, batch: $batch) {
    %s
  }
}"""
    % DYNAMIC_FIELDS
)

DELETE_MODEL = "mutation Delete($id: ID!) { deleteModel(id: $id) { id architecture } }"


async def test_register_model(api: Api) -> None:
    weight = b"\x00\x01resnet-weights" * 1000
    model = await api.register(weight, filename="resnet50.pth")

    assert len(model["id"]) == 24
    assert model["architecture"] == "ResNet50"
    assert model["framework"] == "PyTorch"
    assert model["engine"] == "NONE"
    assert model["metric"] == [{"name": "acc", "value": 0.76}]
    assert model["inputs"][0]["shape"] == [-1, 3, 224, 224]
    assert model["inputs"][0]["format"] == "FORMAT_NCHW"
    assert model["outputs"][0]["format"] == "FORMAT_NONE"
    assert model["modelStatus"] == ["PUBLISHED"]
    assert model["parentModelId"] is None
    assert model["weight"] == {
        "filename": "resnet50.pth",
        "size": len(weight),
        "sha256": hashlib.sha256(weight).hexdigest(),
        "contentType": "application/octet-stream",
    }
    assert model["profileResult"] == {"staticResult": None, "dynamicResults": []}
    assert model["createTime"] == model["updateTime"]

    stored = (await api.data(GET_MODEL, {"id": model["id"]}))["model"]
    assert stored == model


async def test_get_model_by_name(api: Api) -> None:
    resnet = await api.register(architecture="ResNet50")
    await api.register(architecture="ResNet50", version=2)
    await api.register(architecture="VGG16")

    data = await api.data(LIST_MODELS, {"architecture": "ResNet50"})
    nodes = [edge["node"] for edge in data["models"]["edges"]]
    assert [node["version"] for node in nodes] == [2, 1]  # newest first
    assert {node["architecture"] for node in nodes} == {"ResNet50"}
    assert resnet["id"] in {node["id"] for node in nodes}

    data = await api.data(LIST_MODELS, {"architecture": "AlexNet"})
    assert data["models"]["edges"] == []


async def test_get_model_by_task(api: Api) -> None:
    await api.register(architecture="ResNet50", task="Image_Classification")
    detector = await api.register(architecture="YOLOv5", task="Object_Detection")

    data = await api.data(LIST_MODELS, {"task": "Object_Detection"})
    assert [edge["node"]["id"] for edge in data["models"]["edges"]] == [detector["id"]]


async def test_get_model_by_id(api: Api) -> None:
    model = await api.register()
    data = await api.data(GET_MODEL, {"id": model["id"]})
    assert data["model"]["id"] == model["id"]
    assert data["model"]["weight"]["sha256"] == model["weight"]["sha256"]

    assert await api.error_code(GET_MODEL, {"id": "not-an-object-id"}) == "BAD_USER_INPUT"
    assert await api.error_code(GET_MODEL, {"id": "0123456789abcdef01234567"}) == "NOT_FOUND"


async def test_update_model(api: Api) -> None:
    model = await api.register(b"old weights")
    new_weight = b"new, better weights"
    data = await api.data(
        UPDATE_MODEL,
        {
            "id": model["id"],
            "input": {"metric": [{"name": "acc", "value": 0.8}], "modelStatus": ["IN_SERVICE"]},
        },
        {"weight": ("resnet50-v2.pth", new_weight)},
    )
    updated = data["updateModel"]
    assert updated["metric"] == [{"name": "acc", "value": 0.8}]
    assert updated["modelStatus"] == ["IN_SERVICE"]
    # Fields not given stay as they were.
    assert updated["architecture"] == model["architecture"]
    assert updated["inputs"] == model["inputs"]
    assert updated["createTime"] == model["createTime"]
    assert updated["updateTime"] > model["updateTime"]
    assert updated["weight"]["sha256"] == hashlib.sha256(new_weight).hexdigest()
    assert updated["weight"]["size"] == len(new_weight)

    download = await api.http.get(f"/models/{model['id']}/weight")
    assert download.content == new_weight

    unknown = {"id": "0123456789abcdef01234567", "input": {"creator": "x"}}
    assert await api.error_code(UPDATE_MODEL, unknown) == "NOT_FOUND"


async def test_register_static_profiling_result(api: Api) -> None:
    model = await api.register()
    result = {
        "parameters": 25_557_032,
        "flops": 8_178_000_000,  # beyond 32 bits: the Long scalar carries it
        "memory": 102_228_128,
        "mread": 250_000_000,
        "mwrite": 120_000_000,
        "mrw": 370_000_000,
    }
    data = await api.data(REGISTER_STATIC, {"id": model["id"], "result": result})
    assert data["registerStaticProfilingResult"]["profileResult"]["staticResult"] == result

    replaced = {**result, "flops": 1}
    data = await api.data(REGISTER_STATIC, {"id": model["id"], "result": replaced})
    assert data["registerStaticProfilingResult"]["profileResult"]["staticResult"] == replaced

    stored = (await api.data(GET_MODEL, {"id": model["id"]}))["model"]
    assert stored["profileResult"]["staticResult"] == replaced


async def test_register_dynamic_profiling_result(api: Api) -> None:
    model = await api.register()
    first = dynamic_result(batch=1)
    data = await api.data(REGISTER_DYNAMIC, {"id": model["id"], "result": first})
    results = data["registerDynamicProfilingResult"]["profileResult"]["dynamicResults"]
    assert [(r["ip"], r["deviceId"], r["batch"]) for r in results] == [("127.0.0.1", "cpu", 1)]

    await api.data(REGISTER_DYNAMIC, {"id": model["id"], "result": dynamic_result(batch=8)})
    stored = (await api.data(GET_MODEL, {"id": model["id"]}))["model"]
    assert [r["batch"] for r in stored["profileResult"]["dynamicResults"]] == [1, 8]
    assert stored["profileResult"]["dynamicResults"][1]["throughput"]["inferenceThroughput"] == 800

    # The same (ip, device, batch) again is a conflict and changes nothing.
    again = {"id": model["id"], "result": dynamic_result(batch=1, p50=0.5)}
    assert await api.error_code(REGISTER_DYNAMIC, again) == "CONFLICT"
    stored = (await api.data(GET_MODEL, {"id": model["id"]}))["model"]
    assert len(stored["profileResult"]["dynamicResults"]) == 2


async def test_update_dynamic_profiling_result(api: Api) -> None:
    model = await api.register()
    await api.data(REGISTER_DYNAMIC, {"id": model["id"], "result": dynamic_result(batch=1)})
    await api.data(REGISTER_DYNAMIC, {"id": model["id"], "result": dynamic_result(batch=2)})

    faster = dynamic_result(batch=2, p50=0.002)
    data = await api.data(UPDATE_DYNAMIC, {"id": model["id"], "result": faster})
    results = data["updateDynamicProfilingResult"]["profileResult"]["dynamicResults"]
    assert [(r["batch"], r["latency"]["inferenceLatency"]["p50"]) for r in results] == [
        (1, 0.01),
        (2, 0.002),
    ]

    missing = {"id": model["id"], "result": dynamic_result(batch=4)}
    assert await api.error_code(UPDATE_DYNAMIC, missing) == "NOT_FOUND"

    data = await api.data(UPDATE_DYNAMIC, {**missing, "force": True})
    results = data["updateDynamicProfilingResult"]["profileResult"]["dynamicResults"]
    assert [r["batch"] for r in results] == [1, 2, 4]


async def test_delete_dynamic_profiling_result(api: Api) -> None:
    model = await api.register()
    for device, batch in [("cpu", 1), ("cpu", 2), ("cuda:0", 1)]:
        result = dynamic_result(device_id=device, batch=batch)
        await api.data(REGISTER_DYNAMIC, {"id": model["id"], "result": result})

    one = {"id": model["id"], "ip": "127.0.0.1", "deviceId": "cpu", "batch": 2}
    data = await api.data(DELETE_DYNAMIC, one)
    results = data["deleteDynamicProfilingResult"]["profileResult"]["dynamicResults"]
    assert [(r["deviceId"], r["batch"]) for r in results] == [("cpu", 1), ("cuda:0", 1)]
    assert await api.error_code(DELETE_DYNAMIC, one) == "NOT_FOUND"

    # Without a batch: every batch of that device.
    await api.data(REGISTER_DYNAMIC, {"id": model["id"], "result": dynamic_result(batch=4)})
    device = {"id": model["id"], "ip": "127.0.0.1", "deviceId": "cpu"}
    data = await api.data(DELETE_DYNAMIC, device)
    results = data["deleteDynamicProfilingResult"]["profileResult"]["dynamicResults"]
    assert [(r["deviceId"], r["batch"]) for r in results] == [("cuda:0", 1)]
    assert await api.error_code(DELETE_DYNAMIC, device) == "NOT_FOUND"


async def test_delete_model(api: Api) -> None:
    model = await api.register(b"to be deleted")
    data = await api.data(DELETE_MODEL, {"id": model["id"]})
    assert data["deleteModel"] == {"id": model["id"], "architecture": "ResNet50"}

    assert await api.error_code(GET_MODEL, {"id": model["id"]}) == "NOT_FOUND"
    assert (await api.http.get(f"/models/{model['id']}/weight")).status_code == 404
    assert await api.error_code(DELETE_MODEL, {"id": model["id"]}) == "NOT_FOUND"
    listed = await api.data(LIST_MODELS, {"architecture": "ResNet50"})
    assert listed["models"]["edges"] == []
