"""`models(profile: …)`: models with one dynamic result that meets every condition
given, as a normal keyset page, through raw GraphQL, the Python client and
`modelci ls`. The results are registered through the API, so the expected answers are
known: each query is checked against a plain reading of the same results."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import dynamic_result, modelci_serve, register_live
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.client import ModelHub, ProfileFilterInput
from modelci.core.errors import BadUserInput
from modelci.server.embedded import free_port

ARCHITECTURE = "ProfiledNet"
PAGE = """query page($profile: ProfileFilterInput, $architecture: String, $first: Int,
                    $after: String, $last: Int, $before: String) {
  models(profile: $profile, architecture: $architecture, first: $first, after: $after,
         last: $last, before: $before) {
    nodes { id }
    pageInfo { hasNextPage endCursor hasPreviousPage startCursor }
  }
}"""
REGISTER_RESULT = """mutation add($id: ID!, $result: DynamicProfileResultInput!) {
  registerDynamicProfilingResult(modelId: $id, result: $result) { id }
}"""


@dataclass(frozen=True)
class Result:
    """A dynamic result as registered: what the filter looks at."""

    device_id: str
    device_name: str
    batch: int
    p50: float
    p99: float | None
    throughput: float
    stable: bool | None  # None: registered without a measurement

    def as_input(self) -> dict[str, Any]:
        result = dynamic_result(device_id=self.device_id, batch=self.batch, p50=self.p50)
        result["deviceName"] = self.device_name
        result["latency"]["inferenceLatency"] = {
            "avg": self.p50,
            "p50": self.p50,
            "p95": self.p99 or self.p50,
            "p99": self.p99,
        }
        result["throughput"]["inferenceThroughput"] = self.throughput
        if self.stable is not None:
            result["measurement"] = {
                "runtime": "onnxruntime",
                "intraOpThreads": 4,
                "samples": 400 if self.p99 is not None else 60,
                "windows": 4,
                "stable": self.stable,
                "iqrOverMedian": 0.01 if self.stable else 0.3,
            }
        return result

    def meets(self, condition: dict[str, Any]) -> bool:
        """The filter's meaning, read plainly."""
        checks = {
            # an id as workers write them (cpu, cuda:0), any other text a name
            "device": lambda d: (
                d == (self.device_id if re.fullmatch(r"cpu|\w+:\d+", d) else self.device_name)
            ),
            "deviceKind": lambda k: k == ("CPU" if self.device_id == "cpu" else "CUDA"),
            "batch": lambda b: self.batch == b,
            "minBatch": lambda b: self.batch >= b,
            "maxBatch": lambda b: self.batch <= b,
            "maxP99Latency": lambda s: self.p99 is not None and self.p99 <= s,
            "maxP50Latency": lambda s: self.p50 <= s,
            "minThroughput": lambda t: self.throughput >= t,
            "stableOnly": lambda only: not only or self.stable is True,
        }
        return all(checks[name](value) for name, value in condition.items())


XEON, A100, T4 = "Intel Xeon Gold", "NVIDIA A100", "NVIDIA T4"
MODELS: dict[str, list[Result]] = {
    "cpu fast": [
        Result("cpu", XEON, 1, 0.002, 0.004, 500, True),
        Result("cpu", XEON, 8, 0.010, 0.020, 800, True),
    ],
    "cpu slow, unstable": [Result("cpu", XEON, 1, 0.030, 0.060, 33, False)],
    "gpu": [
        Result("cuda:0", A100, 8, 0.001, 0.002, 8000, True),
        Result("cuda:0", A100, 32, 0.003, 0.006, 10000, True),
    ],
    "no p99": [Result("cpu", XEON, 4, 0.005, None, 800, True)],
    "slow cpu, fast gpu": [
        Result("cpu", XEON, 1, 0.025, 0.050, 40, True),
        Result("cuda:1", T4, 1, 0.0025, 0.005, 400, None),
    ],
    "not profiled": [],
}

SINGLE_CONDITIONS: list[dict[str, Any]] = [
    {},
    {"device": "cpu"},
    {"device": XEON},
    {"device": "cuda:0"},
    {"device": A100},
    {"device": T4},
    {"device": "tpu:7"},
    {"deviceKind": "CPU"},
    {"deviceKind": "CUDA"},
    {"batch": 8},
    {"minBatch": 4},
    {"maxBatch": 2},
    {"minBatch": 2, "maxBatch": 8},
    {"maxP99Latency": 0.01},
    {"maxP99Latency": 1.0},
    {"maxP50Latency": 0.006},
    {"minThroughput": 1000},
    {"stableOnly": True},
]


def combined_conditions() -> list[dict[str, Any]]:
    """Every pair of single conditions on different fields, and a few more at once."""
    singles = [condition for condition in SINGLE_CONDITIONS if len(condition) == 1]
    pairs = [
        first | second
        for first, second in itertools.combinations(singles, 2)
        if not set(first) & set(second) and acceptable(first | second)
    ]
    many = [
        {"device": "cpu", "maxP99Latency": 0.01, "minThroughput": 100, "stableOnly": True},
        {"deviceKind": "CUDA", "batch": 8, "minThroughput": 5000, "maxP50Latency": 0.002},
        {"device": "cuda:0", "deviceKind": "CPU"},
        {"device": T4, "deviceKind": "CUDA", "maxP99Latency": 0.01, "maxBatch": 1},
        {"minBatch": 2, "maxBatch": 8, "maxP99Latency": 0.03, "stableOnly": True},
    ]
    return pairs + many


def acceptable(condition: dict[str, Any]) -> bool:
    """Not one of the filters refused for asking the impossible (see below)."""
    if "batch" in condition and ({"minBatch", "maxBatch"} & set(condition)):
        return False
    return condition.get("minBatch", 0) <= condition.get("maxBatch", 2**31)


@dataclass
class Seeded:
    url: str
    ids: dict[str, str]  # by the names in MODELS
    newest_first: list[str]

    def expected(self, condition: dict[str, Any]) -> list[str]:
        by_id = {model_id: name for name, model_id in self.ids.items()}
        return [
            model_id
            for model_id in self.newest_first
            if any(result.meets(condition) for result in MODELS[by_id[model_id]])
        ]

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}
        ).json()
        return body

    def page(self, profile: dict[str, Any] | None, **arguments: Any) -> dict[str, Any]:
        body = self.graphql(PAGE, {"profile": profile, "architecture": ARCHITECTURE, **arguments})
        assert not body.get("errors"), body["errors"]
        page: dict[str, Any] = body["data"]["models"]
        return page


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("hub")
    with modelci_serve(folder, free_port(), workers="0") as (url, _):
        register_live(url, b"other", "convert: false", architecture="OtherNet")
        ids: dict[str, str] = {}
        for version, (name, results) in enumerate(MODELS.items(), start=1):
            ids[name] = register_live(
                url, b"w", "convert: false", architecture=ARCHITECTURE, version=version
            )
            for result in results:
                body = httpx.post(
                    f"{url}/graphql",
                    json={
                        "query": REGISTER_RESULT,
                        "variables": {"id": ids[name], "result": result.as_input()},
                    },
                ).json()
                assert not body.get("errors"), body
        # A profiled model of another architecture, which the architecture filter leaves out.
        other = register_live(url, b"w", "convert: false", architecture="OtherNet", version=2)
        httpx.post(
            f"{url}/graphql",
            json={
                "query": REGISTER_RESULT,
                "variables": {"id": other, "result": MODELS["cpu fast"][0].as_input()},
            },
        )
        yield Seeded(url, ids, list(reversed(ids.values())))


@pytest.mark.parametrize("condition", SINGLE_CONDITIONS, ids=json.dumps)
def test_each_condition_alone(seeded: Seeded, condition: dict[str, Any]) -> None:
    found = seeded.page(condition, first=100)
    assert [node["id"] for node in found["nodes"]] == seeded.expected(condition)


def test_conditions_combined(seeded: Seeded) -> None:
    for condition in combined_conditions():
        found = seeded.page(condition, first=100)
        assert [node["id"] for node in found["nodes"]] == seeded.expected(condition), condition


def test_every_condition_holds_on_one_and_the_same_result(seeded: Seeded) -> None:
    """The model measured slow on its CPU and fast on its GPU has no CPU result within
    10 ms: a condition on the device and one on latency are about one result."""
    mixed = seeded.ids["slow cpu, fast gpu"]
    assert mixed in seeded.expected({"device": "cpu"})
    assert mixed in seeded.expected({"maxP99Latency": 0.01})
    found = seeded.page({"device": "cpu", "maxP99Latency": 0.01}, first=100)
    assert [node["id"] for node in found["nodes"]] == [seeded.ids["cpu fast"]]


def test_a_result_without_a_p99_never_meets_a_p99_bound(seeded: Seeded) -> None:
    no_p99 = seeded.ids["no p99"]
    assert no_p99 in [n["id"] for n in seeded.page({"maxP50Latency": 1.0}, first=100)["nodes"]]
    generous = seeded.page({"maxP99Latency": 1000.0}, first=100)
    assert no_p99 not in [node["id"] for node in generous["nodes"]]


def test_the_filter_with_no_condition_is_every_profiled_model(seeded: Seeded) -> None:
    found = [node["id"] for node in seeded.page({}, first=100)["nodes"]]
    assert seeded.ids["not profiled"] not in found
    assert len(found) == len(MODELS) - 1
    everything = seeded.page(None, first=100)["nodes"]
    assert seeded.ids["not profiled"] in [node["id"] for node in everything]


@pytest.mark.parametrize("size", [1, 2])
def test_a_filtered_query_pages_forwards_and_backwards(seeded: Seeded, size: int) -> None:
    condition = {"maxBatch": 8}
    expected = seeded.expected(condition)
    assert len(expected) > 2

    forwards: list[str] = []
    after = None
    while True:
        page = seeded.page(condition, first=size, after=after)
        forwards += [node["id"] for node in page["nodes"]]
        assert page["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert forwards == expected

    backwards: list[str] = []
    before = None
    while True:
        page = seeded.page(condition, last=size, before=before)
        backwards = [node["id"] for node in page["nodes"]] + backwards
        assert page["pageInfo"]["hasNextPage"] == (before is not None)
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert backwards == expected


@pytest.mark.parametrize(
    "condition",
    [
        {"minBatch": 8, "maxBatch": 2},
        {"batch": 4, "minBatch": 2},
        {"batch": 0},
        {"maxP99Latency": 0},
        {"maxP50Latency": -0.01},
        {"minThroughput": -1},
        {"deviceKind": "TPU"},
        {"device": "x" * 300},
    ],
    ids=json.dumps,
)
def test_a_filter_nothing_could_meet_is_refused(seeded: Seeded, condition: dict[str, Any]) -> None:
    body = seeded.graphql(PAGE, {"profile": condition, "first": 10})
    assert [error["extensions"]["code"] for error in body["errors"]] == ["BAD_USER_INPUT"]


def test_the_python_client_filters_by_profile(seeded: Seeded) -> None:
    condition = {"device": "cpu", "maxP99Latency": 0.01, "stableOnly": True}
    with ModelHub(seeded.url) as hub:
        by_dict = hub.get_models(
            architecture=ARCHITECTURE,
            profile={"device": "cpu", "max_p99_latency": 0.01, "stable_only": True},
        )
        by_input = hub.get_models(
            architecture=ARCHITECTURE,
            profile=ProfileFilterInput(deviceKind="CUDA", batch=8),
        )
        paged = hub.get_models(2, architecture=ARCHITECTURE, profile={"max_batch": 8})
        with pytest.raises(BadUserInput):
            hub.get_models(profile={"min_batch": 8, "max_batch": 2})
    assert [model.id for model in by_dict] == seeded.expected(condition)
    assert [model.id for model in by_input] == seeded.expected({"deviceKind": "CUDA", "batch": 8})
    assert [model.id for model in paged] == seeded.expected({"maxBatch": 8})[:2]


def test_modelci_ls_filters_by_what_was_measured(seeded: Seeded) -> None:
    def ls(*options: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            cli,
            ["ls", "--architecture", ARCHITECTURE, *options, "--json", "--server", seeded.url],
        )
        return result.exit_code, result.stdout

    code, out = ls("--device", "cpu", "--p99", "10ms", "--min-throughput", "100", "--stable")
    assert code == 0, out
    condition = {"device": "cpu", "maxP99Latency": 0.01, "minThroughput": 100, "stableOnly": True}
    assert [model["id"] for model in json.loads(out)] == seeded.expected(condition)

    code, out = ls("--device", "gpu", "--batch", "8", "--p50", "1500us")
    assert code == 0, out
    condition = {"deviceKind": "CUDA", "batch": 8, "maxP50Latency": 0.0015}
    assert [model["id"] for model in json.loads(out)] == seeded.expected(condition)

    code, out = ls("--device", T4, "--min-batch", "1", "--max-batch", "2", "--p99", "0.01s")
    assert code == 0, out
    condition = {"device": T4, "minBatch": 1, "maxBatch": 2, "maxP99Latency": 0.01}
    assert [model["id"] for model in json.loads(out)] == seeded.expected(condition)

    code, _ = ls("--p99", "10")  # 10 of what?
    assert code == 2
