"""Choosing a model by what it measured: recommendations under a goal, comparisons and
aliases, with dynamic results registered through the API so that every answer is known,
through raw GraphQL, the Python client and the CLI."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import warnings
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PREFLIGHT,
    Api,
    model_input,
    modelci_serve,
    multipart,
    register_live,
    serving,
)
from starlette.applications import Starlette
from test_browser import browser, open_page  # noqa: F401  (a fixture, used by name)
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.cli.options import parse_duration
from modelci.client import ModelHub, Shortfall
from modelci.core import choosing
from modelci.core.domain import (
    DynamicProfileResult,
    InfoTuple,
    Measurement,
    MLModel,
    ProfileLatency,
    ProfileMemory,
    ProfileResult,
    ProfileThroughput,
)
from modelci.core.errors import BadUserInput, Conflict, NotFound
from modelci.core.identity import Scope
from modelci.server.app import create_app
from modelci.server.embedded import free_port
from modelci.server.settings import Settings

DYNAMIC = """
mutation($id: ID!, $result: DynamicProfileResultInput!) {
  registerDynamicProfilingResult(modelId: $id, result: $result) { id }
}"""
SMALL_INPUTS = [{"name": "input", "shape": [-1, 3, 16, 16], "dtype": "TYPE_FP32"}]
CLAIM_CONVERSION = """
mutation($devices: [DeviceInput!]!) {
  claimProfilingJob(worker: "w1", devices: $devices, kinds: [CONVERT]) { id modelId }
}"""
CPU = {
    "host": "h",
    "ip": "10.0.0.7",
    "deviceId": "cpu",
    "name": "CPU",
    "kind": "CPU",
    "totalMemory": 1,
}
CONVERTED = """
mutation($source: ID!, $weight: Upload!, $check: ConversionCheckInput!, $job: ID!) {
  registerConvertedModel(sourceId: $source, engine: ONNX, weight: $weight,
                         conversion: $check, jobId: $job, worker: "w1") { id }
}"""
CHECK = {
    "sourceEngine": "TORCHSCRIPT",
    "batchSizes": [1],
    "maxAbsDiff": 0.0,
    "maxRelDiff": 0.0,
    "tolerance": 1e-4,
}
OPTION = "model { id } deviceId deviceName batch p50 p99 throughput stable onFrontier shortfalls"
RECOMMEND = """
query($task: Task!, $architecture: String, $goal: RecommendationGoalInput, $first: Int! = 10) {
  recommend(task: $task, architecture: $architecture, goal: $goal, first: $first) {
    options { %s }
    rejected { %s }
    closest { %s }
    notProfiled { id }
    optionsFound rejectedFound notProfiledFound candidates truncated
  }
}""" % (OPTION, OPTION, OPTION)
COMPARE = """
query($ids: [ID!]!) {
  compareModels(ids: $ids) {
    models { id }
    rows { deviceId deviceName batch results { ip batch throughput { inferenceThroughput } } }
  }
}"""
SET_ALIAS = """
mutation($alias: String!, $id: ID!) {
  setModelAlias(alias: $alias, modelId: $id) { alias modelId updateTime model { id } }
}"""
DELETE_ALIAS = "mutation($alias: String!) { deleteModelAlias(alias: $alias) { alias modelId } }"
ALIASES = "{ modelAliases { alias modelId } }"
BY_ALIAS = "query($alias: String!) { model(alias: $alias) { id aliases } }"
MODEL = "query($id: ID, $alias: String) { model(id: $id, alias: $alias) { id aliases } }"
DELETE = "mutation($id: ID!, $cascade: Boolean!) { deleteModel(id: $id, cascade: $cascade) { id } }"

XEON, T4 = "Intel Xeon", "NVIDIA T4"


def measured(
    batch: int,
    p99_ms: float | None,
    throughput: float,
    *,
    device_id: str = "cpu",
    device_name: str = XEON,
    stable: bool = True,
    p95_ms: float | None = None,
) -> dict[str, Any]:
    """A dynamic result as registerDynamicProfilingResult takes it: p50 half the p99."""
    tail = p99_ms if p99_ms is not None else p95_ms
    assert tail is not None
    p99 = p99_ms / 1000 if p99_ms is not None else None
    latency = {"avg": tail / 2000, "p50": tail / 2000, "p95": (p95_ms or tail) / 1000, "p99": p99}
    return {
        "ip": "10.0.0.1",
        "deviceId": device_id,
        "deviceName": device_name,
        "batch": batch,
        "memory": {"totalMemory": 1024, "memoryUsage": 512, "utilization": 0.5},
        "latency": {
            "initializationLatency": latency,
            "preprocessLatency": latency,
            "inferenceLatency": latency,
            "postprocessLatency": latency,
        },
        "throughput": {
            "batchFormationThroughput": throughput,
            "preprocessThroughput": throughput,
            "inferenceThroughput": throughput,
            "postprocessThroughput": throughput,
        },
        "measurement": {
            "runtime": "onnxruntime",
            "intraOpThreads": 2,
            "samples": 500 if p99_ms is not None else 40,
            "windows": 3 if stable else 10,
            "stable": stable,
            "iqrOverMedian": 0.02,
        },
    }


async def profiled(api: Api, model_id: str, *results: dict[str, Any]) -> None:
    for result in results:
        await api.data(DYNAMIC, {"id": model_id, "result": result})


@cache
def small_network() -> tuple[bytes, bytes]:
    """A small network as TorchScript (a source the hub reads and converts) and as ONNX
    (its variant)."""
    import torch
    from networks import SmallConvNet

    network = SmallConvNet().eval()
    example = torch.randn(2, 3, 16, 16)
    scripted = io.BytesIO()
    torch.jit.save(torch.jit.trace(network, example), scripted)
    exported = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            (example,),
            exported,
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    return scripted.getvalue(), exported.getvalue()


async def convertible(api: Api, **fields: Any) -> str:
    """A model whose registration queues its conversion (TorchScript)."""
    torchscript, _ = small_network()
    model = await api.register(
        torchscript, "net.pt", engine="TORCHSCRIPT", inputs=SMALL_INPUTS, outputs=[], **fields
    )
    model_id: str = model["id"]
    return model_id


async def variant_of(api: Api, source_id: str) -> str:
    """A converted variant registered as a worker does, for the source's conversion job
    (its source's task, architecture and dataset)."""
    job = (await api.data(CLAIM_CONVERSION, {"devices": [CPU]}))["claimProfilingJob"]
    assert job["modelId"] == source_id
    _, onnx = small_network()
    data = await api.data(
        CONVERTED,
        {"source": source_id, "check": CHECK, "job": job["id"]},
        {"weight": ("v.onnx", onnx)},
    )
    variant: str = data["registerConvertedModel"]["id"]
    return variant


async def zoo(api: Api, architecture: str = "ResNet50") -> dict[str, str]:
    """Three models of one task and architecture, a variant of the first, and a model of
    another task, with known results:

    fast:    cpu b1 4 ms 250/s, cpu b8 12 ms 800/s, T4 b8 2 ms 5000/s
    wide:    cpu b1 3 ms 300/s, cpu b4 8 ms 600/s (unstable), cpu b8 9 ms 700/s
    variant: cpu b8 6 ms 750/s
    bare:    nothing
    other:   cpu b1 1 ms 9000/s (Object_Detection)
    """
    models = {"fast": await convertible(api, architecture=architecture, version=1)}
    for version, name in enumerate(("wide", "bare"), start=2):
        models[name] = (await api.register(architecture=architecture, version=version))["id"]
    models["variant"] = await variant_of(api, models["fast"])
    models["other"] = (
        await api.register(architecture=architecture, task="Object_Detection", version=1)
    )["id"]
    await profiled(
        api,
        models["fast"],
        measured(1, 4, 250),
        measured(8, 12, 800),
        measured(8, 2, 5000, device_id="cuda:0", device_name=T4),
    )
    await profiled(
        api,
        models["wide"],
        measured(1, 3, 300),
        measured(4, 8, 600, stable=False),
        measured(8, 9, 700),
    )
    await profiled(api, models["variant"], measured(8, 6, 750))
    await profiled(api, models["other"], measured(1, 1, 9000))
    return models


def brief(option: dict[str, Any], names: dict[str, str]) -> tuple[str, str, int]:
    by_id = {model_id: name for name, model_id in names.items()}
    return by_id[option["model"]["id"]], option["deviceId"], option["batch"]


async def recommended(api: Api, goal: dict[str, Any], **arguments: Any) -> dict[str, Any]:
    variables = {"task": "Image_Classification", "goal": goal, **arguments}
    found: dict[str, Any] = (await api.data(RECOMMEND, variables))["recommend"]
    return found


async def test_recommendation_order_frontier_and_shortfalls(api: Api) -> None:
    names = await zoo(api)
    found = await recommended(api, {"maxP99Latency": 0.010, "device": "cpu"})

    # Most throughput within 10 ms first; the variant is among the candidates.
    assert [brief(option, names) for option in found["options"]] == [
        ("variant", "cpu", 8),
        ("wide", "cpu", 8),
        ("wide", "cpu", 1),
        ("fast", "cpu", 1),
    ]
    best = found["options"][0]
    assert (best["p99"], best["p50"], best["throughput"]) == (0.006, 0.003, 750)
    assert best["deviceName"] == XEON and best["stable"] and best["shortfalls"] == []
    # The frontier over every CPU option: nothing is both faster and higher-throughput.
    frontier = {
        brief(option, names): option["onFrontier"]
        for option in found["options"] + found["rejected"]
    }
    assert frontier == {
        ("wide", "cpu", 1): True,  # 3 ms, the fastest
        ("fast", "cpu", 1): False,  # 4 ms for less than wide's 300/s
        ("variant", "cpu", 8): True,
        ("wide", "cpu", 4): False,
        ("wide", "cpu", 8): False,  # 9 ms for less than the variant's 750/s at 6 ms
        ("fast", "cpu", 8): True,  # the most throughput of all
    }
    # Why the others lost, nearest first: 20 % over the goal, then unstable.
    assert [(brief(option, names), option["shortfalls"]) for option in found["rejected"]] == [
        (("fast", "cpu", 8), ["OVER_LATENCY"]),
        (("wide", "cpu", 4), ["UNSTABLE"]),
    ]
    assert found["closest"] is None  # something met the goal
    assert [model["id"] for model in found["notProfiled"]] == [names["bare"]]
    assert (found["optionsFound"], found["rejectedFound"], found["notProfiledFound"]) == (4, 2, 1)
    assert (found["candidates"], found["truncated"]) == (4, False)  # not the other task's

    # An unstable result may be admitted; the throughput floor and the batch limit hold.
    admitted = await recommended(
        api,
        {"maxP99Latency": 0.010, "minThroughput": 500, "maxBatch": 4, "allowUnstable": True},
    )
    assert [brief(option, names) for option in admitted["options"]] == [("wide", "cpu", 4)]
    assert [(brief(option, names), option["shortfalls"]) for option in admitted["rejected"]] == [
        (("wide", "cpu", 1), ["UNDER_THROUGHPUT"]),  # 40 % short
        (("fast", "cpu", 1), ["UNDER_THROUGHPUT"]),  # 50 % short
    ]
    # Newest first: the variant has no result at batch 4 or below.
    assert admitted["notProfiled"] == [{"id": names["variant"]}, {"id": names["bare"]}]

    # `first` caps what is returned, not what was found.
    capped = await recommended(api, {"maxP99Latency": 0.010, "device": "cpu"}, first=1)
    assert [brief(option, names) for option in capped["options"]] == [("variant", "cpu", 8)]
    assert len(capped["rejected"]) == 1 and capped["optionsFound"] == 4


async def test_a_result_without_a_p99_cannot_meet_a_p99_goal(api: Api) -> None:
    model = (await api.register(architecture="FewSamples"))["id"]
    await profiled(api, model, measured(1, None, 100, p95_ms=1))
    found = (
        await api.data(
            RECOMMEND,
            {"task": "Image_Classification", "architecture": "FewSamples", "goal": {}},
        )
    )["recommend"]
    assert [option["shortfalls"] for option in found["options"]] == [[]]  # no latency goal
    limited = (
        await api.data(
            RECOMMEND,
            {
                "task": "Image_Classification",
                "architecture": "FewSamples",
                "goal": {"maxP99Latency": 0.5},
            },
        )
    )["recommend"]
    assert limited["options"] == [] and limited["closest"]["shortfalls"] == ["NO_P99"]
    assert limited["closest"]["p99"] is None


@pytest.mark.parametrize(
    ("goal", "first", "field"),
    [
        ({"maxP99Latency": 0}, 10, "goal.max_p99_latency"),
        ({"minThroughput": -1}, 10, "goal.min_throughput"),
        ({"maxBatch": 0}, 10, "goal.max_batch"),
        ({"device": ""}, 10, "goal.device"),
        ({}, 0, "first"),
        ({}, 101, "first"),
    ],
)
async def test_a_bad_goal_is_refused_with_the_field_named(
    api: Api, goal: dict[str, Any], first: int, field: str
) -> None:
    body = await api.post(RECOMMEND, {"task": "Other", "goal": goal, "first": first})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert field in error["message"]


async def test_compare_aligns_results_by_device_and_batch(api: Api) -> None:
    names = {
        name: (await api.register(version=version))["id"]
        for version, name in enumerate(("fast", "wide", "bare"), start=1)
    }
    await profiled(
        api,
        names["fast"],
        measured(1, 4, 250),
        measured(8, 12, 800),
        measured(8, 2, 5000, device_id="cuda:0", device_name=T4),
    )
    await profiled(
        api, names["wide"], measured(1, 3, 300), measured(4, 8, 600), measured(8, 9, 700)
    )
    ids = [names["fast"], names["wide"], names["bare"]]
    compared = (await api.data(COMPARE, {"ids": ids}))["compareModels"]
    assert [model["id"] for model in compared["models"]] == ids
    rows = {
        (row["deviceId"], row["deviceName"], row["batch"]): [
            result["throughput"]["inferenceThroughput"] if result else None
            for result in row["results"]
        ]
        for row in compared["rows"]
    }
    assert rows == {
        ("cpu", XEON, 1): [250, 300, None],
        ("cpu", XEON, 4): [None, 600, None],
        ("cpu", XEON, 8): [800, 700, None],
        ("cuda:0", T4, 8): [5000, None, None],
    }
    assert list(rows) == sorted(rows)

    assert await api.error_code(COMPARE, {"ids": []}) == "BAD_USER_INPUT"
    assert await api.error_code(COMPARE, {"ids": [names["fast"]] * 2}) == "BAD_USER_INPUT"
    too_many = [f"{index:024x}" for index in range(21)]
    assert await api.error_code(COMPARE, {"ids": too_many}) == "BAD_USER_INPUT"
    missing = await api.post(COMPARE, {"ids": [names["fast"], "0" * 24]})
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert "0" * 24 in missing["errors"][0]["message"]
    assert await api.error_code(COMPARE, {"ids": ["nonsense"]}) == "BAD_USER_INPUT"


async def aliases_of(api: Api, model_id: str) -> list[str]:
    found: list[str] = (await api.data(MODEL, {"id": model_id}))["model"]["aliases"]
    return found


async def test_an_alias_names_one_model_and_moves(api: Api) -> None:
    first = (await api.register(version=1))["id"]
    second = (await api.register(version=2))["id"]
    pointed = await api.data(SET_ALIAS, {"alias": "resnet50-prod", "id": first})
    assert pointed["setModelAlias"]["modelId"] == first
    assert pointed["setModelAlias"]["model"] == {"id": first}
    assert (await api.data(BY_ALIAS, {"alias": "resnet50-prod"}))["model"] == {
        "id": first,
        "aliases": ["resnet50-prod"],
    }
    await api.data(SET_ALIAS, {"alias": "resnet50-prod", "id": second})  # moved
    await api.data(SET_ALIAS, {"alias": "candidate", "id": second})
    assert await aliases_of(api, first) == []
    assert await aliases_of(api, second) == ["candidate", "resnet50-prod"]
    assert (await api.data(ALIASES))["modelAliases"] == [
        {"alias": "candidate", "modelId": second},
        {"alias": "resnet50-prod", "modelId": second},
    ]

    # Refusals change nothing.
    for alias in ("", "-leading-dash", "has space", "x" * 129, "0123456789abcdef01234567"):
        assert await api.error_code(SET_ALIAS, {"alias": alias, "id": first}) == "BAD_USER_INPUT"
    assert await api.error_code(SET_ALIAS, {"alias": "candidate", "id": "0" * 24}) == "NOT_FOUND"
    assert await api.error_code(SET_ALIAS, {"alias": "candidate", "id": "x"}) == "BAD_USER_INPUT"
    assert await api.error_code(MODEL, {"id": first, "alias": "candidate"}) == "BAD_USER_INPUT"
    assert await api.error_code(MODEL, {}) == "BAD_USER_INPUT"
    assert await api.error_code(BY_ALIAS, {"alias": "nobody"}) == "NOT_FOUND"
    assert await aliases_of(api, second) == ["candidate", "resnet50-prod"]

    removed = (await api.data(DELETE_ALIAS, {"alias": "candidate"}))["deleteModelAlias"]
    assert removed == {"alias": "candidate", "modelId": second}
    assert await api.error_code(DELETE_ALIAS, {"alias": "candidate"}) == "NOT_FOUND"
    assert await aliases_of(api, second) == ["resnet50-prod"]


async def test_concurrent_moves_leave_one_target(api: Api) -> None:
    models = [(await api.register(version=version))["id"] for version in range(1, 21)]
    moves = [api.data(SET_ALIAS, {"alias": "champion", "id": model}) for model in models]
    answers = await asyncio.gather(*moves)
    assert sorted(answer["setModelAlias"]["modelId"] for answer in answers) == sorted(models)
    listed = (await api.data(ALIASES))["modelAliases"]
    assert len(listed) == 1 and listed[0]["modelId"] in models
    named = [model for model in models if await aliases_of(api, model) == ["champion"]]
    assert named == [listed[0]["modelId"]]
    assert (await api.data(BY_ALIAS, {"alias": "champion"}))["model"]["id"] == named[0]


async def test_deleting_an_aliased_model_needs_cascade(api: Api) -> None:
    alone = (await api.register(version=2))["id"]
    await api.data(SET_ALIAS, {"alias": "alone-prod", "id": alone})

    refused = await api.post(DELETE, {"id": alone, "cascade": False})
    error = refused["errors"][0]
    assert error["extensions"]["code"] == "CONFLICT" and "alone-prod" in error["message"]
    assert "cascade: true" in error["message"]
    assert await aliases_of(api, alone) == ["alone-prod"]
    assert (await api.data(DELETE, {"id": alone, "cascade": True}))["deleteModel"]["id"] == alone
    assert await api.error_code(BY_ALIAS, {"alias": "alone-prod"}) == "NOT_FOUND"
    assert (await api.data(ALIASES))["modelAliases"] == []


@pytest.fixture
async def secured(settings: Settings, mongodb_url: str) -> AsyncIterator[tuple[Api, Starlette]]:
    app = create_app(settings.model_copy(update={"auth": "on"}), mongodb_url=mongodb_url)
    async with serving(app) as api:
        yield api, app


async def test_alias_mutations_need_the_write_scope(
    secured: tuple[Api, Starlette],
) -> None:
    api, app = secured
    store = app.state.services.tokens
    read = (await store.create("reader", [Scope.read]))[1]
    write = (await store.create("writer", [Scope.write]))[1]

    async def post(query: str, token: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await api.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"authorization": f"Bearer {token}"},
        )
        body: dict[str, Any] = response.json()
        return body

    request = multipart(
        "mutation($input: ModelInput!, $weight: Upload!) "
        "{ registerModel(input: $input, weight: $weight) { id } }",
        {"input": model_input()},
        {"weight": ("m.pt", b"weights")},
    )
    response = await api.http.post(
        "/graphql", headers={**PREFLIGHT, "authorization": f"Bearer {write}"}, **request
    )
    model = response.json()["data"]["registerModel"]["id"]

    for query, variables in (
        (SET_ALIAS, {"alias": "prod", "id": model}),
        (DELETE_ALIAS, {"alias": "prod"}),
    ):
        refused = await post(query, read, variables)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await post(ALIASES, read, {}))["data"] == {"modelAliases": []}
    assert "errors" not in await post(SET_ALIAS, write, {"alias": "prod", "id": model})
    assert (await post(BY_ALIAS, read, {"alias": "prod"}))["data"]["model"]["id"] == model
    listed = await post(RECOMMEND, read, {"task": "Image_Classification", "goal": {}})
    assert listed["data"]["recommend"]["notProfiled"] == [{"id": model}]
    assert "errors" not in await post(DELETE_ALIAS, write, {"alias": "prod"})


# The rules alone, where the GraphQL tests would need contrived data.


def model_with(model_id: str, p99: float, throughput: float) -> MLModel:
    """A model with one CPU result at batch 1 (only what the rules read)."""
    timing = InfoTuple(avg=p99 / 2, p50=p99 / 2, p95=p99, p99=p99)
    result = DynamicProfileResult(
        ip="h",
        device_id="cpu",
        device_name="c",
        batch=1,
        memory=ProfileMemory(total_memory=1, memory_usage=1, utilization=0),
        latency=ProfileLatency(
            initialization_latency=timing,
            preprocess_latency=timing,
            inference_latency=timing,
            postprocess_latency=timing,
        ),
        throughput=ProfileThroughput(
            batch_formation_throughput=throughput,
            preprocess_throughput=throughput,
            inference_throughput=throughput,
            postprocess_throughput=throughput,
        ),
        measurement=Measurement(
            runtime="r", intra_op_threads=1, samples=100, windows=3, stable=True, iqr_over_median=0
        ),
    )
    return MLModel.model_construct(
        id=model_id, profile_result=ProfileResult(dynamic_results=[result])
    )


def test_equal_throughput_ranks_the_faster_first_and_twins_share_the_frontier() -> None:
    models = [model_with("a", 0.004, 100), model_with("b", 0.002, 100)]
    models.append(model_with("c", 0.002, 100))  # b's twin
    found = choosing.recommend(models, choosing.Goal(max_p99_latency=0.010))
    assert [option.model.id for option in found.options] == ["b", "c", "a"]
    assert [option.on_frontier for option in found.options] == [True, True, False]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10ms", 0.01), ("0.01s", 0.01), ("250us", 0.00025), ("250µs", 0.00025), ("5e-3s", 0.005)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--p99") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "ms", "10 minutes", "-1ms", "0ms", ""])
def test_durations_without_a_unit_or_value_are_refused(text: str) -> None:
    import typer

    with pytest.raises(typer.BadParameter):
        parse_duration(text, "--p99")


# The Python client and the CLI against a served hub.

runner = CliRunner()


def modelci(hub: str, *arguments: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, [*arguments, "--server", hub], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def served(hub: str) -> Iterator[tuple[ModelHub, dict[str, str]]]:
    """Two models of an architecture of their own on the module's hub, with results."""
    with ModelHub(hub) as client:
        names = {
            name: register_live(
                hub, name.encode(), "convert: false", architecture="Chosen", version=v
            )
            for v, name in enumerate(("quick", "steady"), start=1)
        }
        for result in (measured(1, 2, 400), measured(8, 20, 1600)):
            client.register_dynamic_profiling_result(names["quick"], result)
        for result in (measured(1, 5, 200), measured(4, 9, 450)):
            client.register_dynamic_profiling_result(names["steady"], result)
        yield client, names


def test_the_python_client(served: tuple[ModelHub, dict[str, str]]) -> None:
    client, names = served
    found = client.recommend(
        "Image_Classification", architecture="Chosen", max_p99_latency=0.010, device="cpu"
    )
    assert [(option.model.id, option.batch) for option in found.options] == [
        (names["steady"], 4),
        (names["quick"], 1),
        (names["steady"], 1),
    ]
    assert [option.on_frontier for option in found.options] == [True, True, False]
    assert found.rejected[0].shortfalls == [Shortfall.OVER_LATENCY]
    nothing = client.recommend("Image_Classification", architecture="Chosen", max_p99_latency=0.001)
    assert nothing.options == [] and nothing.closest is not None
    assert (nothing.closest.model.id, nothing.closest.batch) == (names["quick"], 1)
    with pytest.raises(BadUserInput, match="device_kind"):
        client.recommend("Image_Classification", device_kind="TPU")

    compared = client.compare_models([names["quick"], names["steady"]])
    assert [
        (row.batch, [r.batch if r else None for r in row.results]) for row in compared.rows
    ] == [
        (1, [1, 1]),
        (4, [None, 4]),
        (8, [8, None]),
    ]

    client.set_alias("chosen-prod", names["quick"])
    client.set_alias("chosen-prod", names["steady"])
    named = client.get_model(alias="chosen-prod")
    assert (named.id, named.aliases) == (names["steady"], ["chosen-prod"])
    assert client.get_model(names["quick"]).aliases == []
    assert [(alias.alias, alias.model_id) for alias in client.aliases()] == [
        ("chosen-prod", names["steady"])
    ]
    with pytest.raises(Conflict, match="chosen-prod"):
        client.delete_model(names["steady"])
    assert client.delete_alias("chosen-prod").model_id == names["steady"]
    with pytest.raises(NotFound):
        client.get_model(alias="chosen-prod")


def test_the_cli(served: tuple[ModelHub, dict[str, str]], hub: str) -> None:
    _, names = served
    code, out, err = modelci(
        hub, "recommend", "--task", "Image_Classification", "--architecture", "Chosen",
        "--p99", "10ms", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    lines = [line for line in out.splitlines() if names["steady"] in line or names["quick"] in line]
    assert names["steady"] in lines[0] and "450.0" in lines[0] and "★" in lines[0]
    assert names["quick"] in lines[1] and "400.0" in lines[1]
    assert "over latency" in out  # the rejected batch 8, and why

    code, out, err = modelci(
        hub, "recommend", "--task", "Image_Classification", "--architecture", "Chosen",
        "--p99", "500us",
    )  # fmt: skip
    assert code == 0, err
    said = " ".join(out.split())
    assert "nothing meets the goal (p99 ≤ 0.5 ms); closest: " + names["quick"] in said

    code, out, err = modelci(hub, "recommend", "--task", "Image_Classification", "--p99", "10")
    assert code == 2 and "unit" in err

    code, out, err = modelci(hub, "alias", "set", "chosen-cli", names["quick"])
    assert code == 0, err
    assert f"chosen-cli → {names['quick']}" in out
    code, out, err = modelci(hub, "alias", "ls")
    assert code == 0 and "chosen-cli" in out and names["quick"] in out
    code, out, err = modelci(hub, "alias", "ls", "--json")
    assert {"alias": "chosen-cli", "model_id": names["quick"]}.items() <= json.loads(out)[0].items()
    code, out, err = modelci(hub, "show", "chosen-cli")
    assert code == 0, err
    assert names["quick"] in out and "aliases: chosen-cli" in out
    code, out, err = modelci(hub, "rm", names["quick"])
    assert code == 5 and "chosen-cli" in " ".join(err.split())
    code, out, err = modelci(hub, "alias", "rm", "chosen-cli")
    assert code == 0 and "removed chosen-cli" in out
    code, out, err = modelci(hub, "show", "chosen-cli")
    assert code == 4 and "alias ls" in err


# The dashboard: latency against throughput per device, the frontier filled in.

DOTS = """new Promise(resolve => {
  const look = () => {
    const dots = document.querySelectorAll('#frontier-plots circle[data-model]');
    if (dots.length < 4) { requestAnimationFrame(look); return; }
    resolve(Array.from(dots, dot => [dot.dataset.model, Number(dot.dataset.batch),
                                     dot.dataset.frontier === 'true',
                                     dot.getAttribute('class').trim()]));
  };
  look();
})"""
LIMITED = """(() => {
  const input = document.getElementById('frontier-p99');
  input.value = '10';
  input.dispatchEvent(new Event('input'));
  return Array.from(document.querySelectorAll('#frontier-plots circle.over'),
                    dot => [dot.dataset.model, Number(dot.dataset.batch)]);
})()"""


def test_the_dashboard_draws_the_frontier_per_device(tmp_path: Path, browser: int) -> None:  # noqa: F811
    with modelci_serve(tmp_path / "hub", free_port(), workers="0") as (hub, _):
        quick = register_live(hub, b"quick", "convert: false", architecture="Drawn", version=1)
        steady = register_live(hub, b"steady", "convert: false", architecture="Drawn", version=2)
        with ModelHub(hub) as client:
            for result in (measured(1, 2, 400), measured(8, 20, 1600)):
                client.register_dynamic_profiling_result(quick, result)
            for result in (measured(1, 5, 200, stable=False), measured(4, 9, 450)):
                client.register_dynamic_profiling_result(steady, result)
        with open_page(browser, f"{hub}/dashboard") as tools:
            dots = tools.evaluate(DOTS)
            over = tools.evaluate(LIMITED)
            screenshot = tools.send("Page.captureScreenshot")["data"]
        (tmp_path / "frontier.png").write_bytes(base64.b64decode(screenshot))
    assert sorted(dots) == sorted(
        [
            [quick, 1, True, ""],
            [quick, 8, True, ""],
            [steady, 1, False, "unstable"],  # slower than quick's batch 1, and less
            [steady, 4, True, ""],
        ]
    )
    assert over == [[quick, 8]]  # 20 ms, over the 10 ms drawn
