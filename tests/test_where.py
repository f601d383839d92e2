"""Search (``models(where: …)``): tags, metric thresholds, params, literal text patterns,
enums, versions, creation times and the profile filter, with and/or/not, beside the
older equality arguments; pages through a search; bounds and bad input refused with a
clear BAD_USER_INPUT. Through raw GraphQL, the Python client and `modelci ls --where`,
on the real embedded database."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Api, dynamic_result, modelci_serve
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.client import ModelHub, ModelWhere, WhereTextError
from modelci.core.domain import MAX_WHERE_CONDITIONS, MAX_WHERE_DEPTH
from modelci.core.errors import BadUserInput
from modelci.core.where_text import parse_where
from modelci.server.embedded import free_port

SEARCH = """
query($where: ModelWhereInput, $architecture: String, $profile: ProfileFilterInput,
      $first: Int, $after: String) {
  models(where: $where, architecture: $architecture, profile: $profile, first: $first,
         after: $after) {
    nodes { id architecture createTime }
    pageInfo { hasNextPage endCursor }
  }
}"""
PROFILE = """
mutation($id: ID!, $result: DynamicProfileResultInput!) {
  registerDynamicProfilingResult(modelId: $id, result: $result) { id }
}"""

# The catalog, oldest first: (name, fields).
CATALOG: list[tuple[str, dict[str, Any]]] = [
    (
        "resnet50",
        {
            "architecture": "ResNet50",
            "metric": [{"name": "acc", "value": 0.76}, {"name": "top5", "value": 0.93}],
            "tags": [{"name": "team", "value": "vision"}, {"name": "stage", "value": "prod"}],
            "params": [{"name": "lr", "value": "0.1"}],
        },
    ),
    (
        "resnet18",
        {
            "architecture": "ResNet18",
            "metric": [{"name": "acc", "value": 0.70}],
            "tags": [{"name": "team", "value": "vision"}],
            "params": [{"name": "lr", "value": "0.01"}],
        },
    ),
    (
        "tiny",
        {
            "architecture": "resnet-tiny",
            "metric": [{"name": "acc", "value": 0.80}],
            "tags": [{"name": "team", "value": "nlp"}],
        },
    ),
    (
        "vit",
        {
            "architecture": "ViT.b+16",
            "dataset": "CIFAR-10",
            "metric": [{"name": "acc", "value": 0.85}],
            "tags": [{"name": "team", "value": "vision"}, {"name": "deprecated", "value": ""}],
        },
    ),
    (
        "bert",
        {
            "architecture": "bert",
            "version": 2,
            "task": "Text_Classification",
            "metric": [{"name": "f1", "value": 0.9}],
            "tags": [{"name": "team", "value": "nlp"}],
        },
    ),
    (
        "resnet50-v2",
        {"architecture": "ResNet50", "version": 2, "metric": [{"name": "acc", "value": 0.75}]},
    ),
]


@pytest.fixture
async def catalog(api: Api) -> dict[str, dict[str, Any]]:
    """The catalog registered, oldest first: each model by name."""
    models = {}
    for name, fields in CATALOG:
        models[name] = await api.register(weight=name.encode(), **fields)
    return models


class Search:
    def __init__(self, api: Api, catalog: dict[str, dict[str, Any]]) -> None:
        self.api = api
        self.names = {model["id"]: name for name, model in catalog.items()}

    async def __call__(self, where: dict[str, Any] | None = None, **arguments: Any) -> list[str]:
        """The names of the models found, newest first (every page)."""
        found: list[str] = []
        after = None
        while True:
            variables = {"where": where, "first": 2, "after": after, **arguments}
            page = (await self.api.data(SEARCH, variables))["models"]
            found += [self.names[node["id"]] for node in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    async def refused(self, where: Any, *words: str) -> str:
        """The message of the BAD_USER_INPUT the search is refused with."""
        body = await self.api.post(SEARCH, {"where": where})
        assert body.get("errors") and body.get("data") is None, body
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        for word in words:
            assert word in error["message"], error["message"]
        message: str = error["message"]
        return message


@pytest.fixture
def search(api: Api, catalog: dict[str, dict[str, Any]]) -> Search:
    return Search(api, catalog)


def tag(name: str, **condition: Any) -> dict[str, Any]:
    return {"tags": [{"name": name, **condition}]}


def acc(**bounds: float) -> dict[str, Any]:
    return {"metrics": [{"name": "acc", **bounds}]}


async def test_tags_metrics_and_a_name_prefix_together(search: Search) -> None:
    where = {
        **tag("team", equals="vision"),
        **acc(gt=0.75),
        "architecture": {"prefix": "resnet"},
    }
    assert await search(where) == ["resnet50"]
    # Every page of a search, newest first; the prefix ignores case.
    assert await search({"architecture": {"prefix": "RESNET"}}) == [
        "resnet50-v2",
        "tiny",
        "resnet18",
        "resnet50",
    ]
    # Two conditions on entries of the same array: each holds on some entry.
    both = {"metrics": [{"name": "acc", "gt": 0.75}, {"name": "top5", "gte": 0.93}]}
    assert await search(both) == ["resnet50"]
    assert await search({"tags": [{"name": "team", "equals": "vision"}, {"name": "stage"}]}) == [
        "resnet50"
    ]


async def test_metric_thresholds(search: Search) -> None:
    assert await search(acc(gte=0.75)) == ["resnet50-v2", "vit", "tiny", "resnet50"]
    assert await search(acc(gt=0.75)) == ["vit", "tiny", "resnet50"]
    assert await search(acc(eq=0.75)) == ["resnet50-v2"]
    assert await search(acc(lt=0.75)) == ["resnet18"]
    assert await search(acc(lte=0.75)) == ["resnet50-v2", "resnet18"]
    assert await search(acc(gt=0.75, lt=0.85)) == ["tiny", "resnet50"]
    assert await search(acc()) == ["resnet50-v2", "vit", "tiny", "resnet18", "resnet50"]
    assert await search({"metrics": [{"name": "f1", "gte": 0.9}]}) == ["bert"]


async def test_tags_and_params_by_value_presence_and_absence(search: Search) -> None:
    assert await search(tag("team", equals="nlp")) == ["bert", "tiny"]
    assert await search(tag("deprecated")) == ["vit"]
    assert await search(tag("deprecated", equals="")) == ["vit"]
    assert await search(tag("team", exists=False)) == ["resnet50-v2"]
    assert await search({"not": tag("team")}) == ["resnet50-v2"]
    assert await search({"params": [{"name": "lr", "equals": "0.1"}]}) == ["resnet50"]
    assert await search({"params": [{"name": "lr"}]}) == ["resnet18", "resnet50"]


async def test_and_or_not_combined(search: Search) -> None:
    either = {"or": [tag("team", equals="nlp"), acc(gt=0.84)]}
    assert await search(either) == ["bert", "vit", "tiny"]
    within = {
        "architecture": {"prefix": "resnet"},
        "or": [tag("team", equals="nlp"), acc(lt=0.75)],
    }
    assert await search(within) == ["tiny", "resnet18"]
    # (a or b) and (c or d), spread into four branches.
    crossed = {
        "and": [
            {"or": [{"task": "Text_Classification"}, {"dataset": {"equals": "CIFAR-10"}}]},
            {"or": [tag("team", equals="nlp"), tag("deprecated")]},
        ]
    }
    assert await search(crossed) == ["bert", "vit"]
    assert await search({"not": {"or": [tag("team", equals="vision"), acc(gte=0.8)]}}) == [
        "resnet50-v2",
        "bert",
    ]
    assert await search({"and": [acc(gt=0.7), {"not": acc(gt=0.8)}]}) == [
        "resnet50-v2",
        "tiny",
        "resnet50",
    ]
    # More branches than are spread out: the same answer from the nested query.
    many = {"or": [{"architecture": {"equals": name}} for name in ("ResNet50", "ResNet18", "bert")]}
    spread = {"and": [many, {"or": [{"version": {"eq": 1}}, {"version": {"eq": 2}}]}]}
    wide = {"and": [spread, {"or": [tag("team"), {"not": tag("team")}]}]}
    assert (
        await search(wide) == await search(many) == ["resnet50-v2", "bert", "resnet18", "resnet50"]
    )


async def test_enums_versions_and_literal_text(search: Search) -> None:
    assert await search({"task": "Text_Classification"}) == ["bert"]
    assert await search({"engine": "NONE", "framework": "PyTorch", "status": "PUBLISHED"}) == [
        "resnet50-v2",
        "bert",
        "vit",
        "tiny",
        "resnet18",
        "resnet50",
    ]
    assert await search({"status": "CONVERTED"}) == []
    assert await search({"version": {"gte": 2}}) == ["resnet50-v2", "bert"]
    assert await search({"version": {"eq": 2}, "architecture": {"equals": "bert"}}) == ["bert"]
    assert await search({"dataset": {"contains": "far-1"}}) == ["vit"]
    # Text is matched literally: no pattern character a client sends is one.
    assert await search({"architecture": {"contains": ".b+"}}) == ["vit"]
    assert await search({"architecture": {"prefix": "vit.b+1"}}) == ["vit"]
    for pattern in (".*", "ViT.b+16$", "(", "[a-z]", "\\", "res|bert", "^bert"):
        assert await search({"architecture": {"contains": pattern}}) == [], pattern
        assert await search({"architecture": {"prefix": pattern}}) == [], pattern
    assert await search({"architecture": {"equals": "resnet50"}}) == []  # equals: as stored


async def test_creation_times(search: Search, catalog: dict[str, dict[str, Any]]) -> None:
    times = {name: model["createTime"] for name, model in catalog.items()}
    newest_first = list(reversed(catalog))

    def created(after: str | None = None, before: str | None = None) -> list[str]:
        return [
            name
            for name in newest_first
            if (after is None or times[name] > after) and (before is None or times[name] < before)
        ]

    expected = created(after=times["tiny"])
    assert "tiny" not in expected and "resnet50-v2" in expected
    assert await search({"created": {"after": times["tiny"]}}) == expected
    assert await search({"created": {"before": times["tiny"]}}) == created(before=times["tiny"])
    window = {"after": times["resnet50"], "before": times["resnet50-v2"]}
    assert await search({"created": window}) == created(**window)
    assert await search({"created": {"after": "2000-01-01T00:00:00"}}) == newest_first


async def test_the_profile_filter_inside_and_beside_a_search(
    api: Api, search: Search, catalog: dict[str, dict[str, Any]]
) -> None:
    fast, slow = dynamic_result(batch=8, p50=0.001), dynamic_result(batch=8, p50=0.1)
    for name, result in (("resnet50", fast), ("resnet18", slow), ("tiny", fast)):
        await api.data(PROFILE, {"id": catalog[name]["id"], "result": result})
    quick = {"device": "cpu", "batch": 8, "maxP99Latency": 0.01}
    assert await search({"profile": quick}) == ["tiny", "resnet50"]
    assert await search({"profile": quick, **tag("team", equals="vision")}) == ["resnet50"]
    assert await search({"or": [{"profile": quick}, tag("deprecated")]}) == [
        "vit",
        "tiny",
        "resnet50",
    ]
    # The older arguments hold as well as the search.
    assert await search(tag("team", equals="vision"), profile=quick) == ["resnet50"]
    assert await search(acc(gte=0.7), profile={"device": "cpu"}, architecture="ResNet18") == [
        "resnet18"
    ]
    assert await search({"profile": {"minBatch": 16}}) == []


async def test_a_search_pages_one_model_at_a_time(search: Search, api: Api) -> None:
    for where in (
        {"architecture": {"prefix": "resnet"}},
        {"or": [tag("team", equals="nlp"), acc(gt=0.84)]},
    ):
        whole = await search(where)
        pages: list[str] = []
        after = None
        while True:
            variables = {"where": where, "first": 1, "after": after}
            page = (await api.data(SEARCH, variables))["models"]
            pages += [search.names[node["id"]] for node in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert pages == whole and len(whole) >= 3


def nested(levels: int) -> dict[str, Any]:
    where: dict[str, Any] = tag("team")
    for _ in range(levels - 1):
        where = {"not": where}
    return where


async def test_bad_searches_are_refused_clearly_and_change_nothing(
    search: Search, api: Api
) -> None:
    before = await search()
    await search.refused({"colour": "red"}, "colour")
    await search.refused({"metrics": [{"name": "acc", "above": 0.5}]}, "above")
    await search.refused({"architecture": {}}, "where.architecture", "equals, prefix or contains")
    await search.refused({"architecture": {"prefix": "x" * 257}}, "where.architecture.prefix")
    await search.refused({"tags": [{"name": "team", "equals": "x", "exists": False}]}, "absent")
    await search.refused({"metrics": [{"name": "top 5", "gt": 1}]}, "where.metrics.0.name")
    await search.refused({"version": {}}, "where.version")
    await search.refused({"task": "Painting"}, "Painting", "Image_Classification")
    await search.refused({"created": {"after": "2026-02-01", "before": "2026-01-01"}}, "created")
    await search.refused({"or": []}, "where.or")
    await search.refused({"profile": {"batch": 8, "minBatch": 4}}, "where.profile")
    await search.refused(nested(MAX_WHERE_DEPTH + 1), f"at most {MAX_WHERE_DEPTH} levels")
    await search.refused(
        {"or": [tag(f"t{index}") for index in range(MAX_WHERE_CONDITIONS + 1)]},
        f"at most {MAX_WHERE_CONDITIONS} conditions",
    )
    await search.refused(
        {"and": [{"tags": [{"name": f"t{i}"} for i in range(20)]}] * 2},
        f"at most {MAX_WHERE_CONDITIONS} conditions",
    )
    # Far past the bounds: refused as such, never an internal error.
    message = await search.refused(nested(200))
    assert "nest" in message or "deep" in message
    # At the bound: found (not not a: a).
    assert await search(nested(MAX_WHERE_DEPTH)) == await search(nested(MAX_WHERE_DEPTH - 2))
    assert await search() == before


# The Python client and the command line, on a live hub


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModelHub, dict[str, str]]]:
    """A live hub with part of the catalog, registered through the client."""
    folder = tmp_path_factory.mktemp("hub")
    with modelci_serve(folder, free_port(), workers="0") as (url, _), ModelHub(url) as hub:
        ids = {}
        for name, fields in CATALOG[:4]:
            fields = dict(fields)
            model = hub.register_model(
                name.encode(),
                architecture=fields["architecture"],
                framework="PyTorch",
                engine="NONE",
                dataset=fields.get("dataset", "ImageNet"),
                task="Image_Classification",
                metrics={m["name"]: m["value"] for m in fields["metric"]},
                tags={t["name"]: t["value"] for t in fields.get("tags", [])},
                params={p["name"]: p["value"] for p in fields.get("params", [])},
                convert=False,
            )
            ids[model.id] = name
        yield hub, ids


def test_the_client_takes_the_text_or_the_typed_search(
    live: tuple[ModelHub, dict[str, str]],
) -> None:
    hub, names = live

    def found(**arguments: Any) -> list[str]:
        return [names[model.id] for model in hub.get_models(**arguments)]

    text = "tags.team = vision and metrics.acc > 0.75 and architecture ^= ResNet"
    assert found(where=text) == ["resnet50"]
    typed = ModelWhere.model_validate(
        {"tags": [{"name": "team", "equals": "vision"}], "metrics": [{"name": "acc", "gt": 0.75}]}
    )
    assert found(where=typed) == ["vit", "resnet50"]
    assert found(
        where={"or": [{"tags": [{"name": "deprecated"}]}, {"params": [{"name": "lr"}]}]}
    ) == [
        "vit",
        "resnet18",
        "resnet50",
    ]
    assert found(where="not tags.team = vision or metrics.acc <= 0.7") == ["tiny", "resnet18"]
    assert found(where="architecture *= '.b+'") == ["vit"]
    assert found(where="metrics.acc >= 0.7", architecture="ResNet18") == ["resnet18"]
    assert found(where="metrics.acc >= 0.7", limit=2) == ["vit", "tiny"]

    with pytest.raises(WhereTextError) as refused:
        hub.get_models(where="tags.team = vision and metrics.acc >> 0.75")
    assert refused.value.position == 37 and refused.value.token == ">"
    assert "character 37" in refused.value.message
    with pytest.raises(BadUserInput, match=r"where\.tags\.0"):
        hub.get_models(where={"tags": [{"name": "team", "equals": "x", "exists": False}]})
    with pytest.raises(BadUserInput, match="colour"):
        hub.get_models(where={"colour": "red"})


def test_modelci_ls_where(live: tuple[ModelHub, dict[str, str]]) -> None:
    hub, names = live
    runner = CliRunner()

    def ls(*arguments: str) -> Any:
        return runner.invoke(cli, ["ls", *arguments, "--server", hub.url], env={"COLUMNS": "200"})

    result = ls("--where", "tags.team = vision and metrics.acc > 0.75", "--json")
    assert result.exit_code == 0, result.output
    assert [names[model["id"]] for model in json.loads(result.stdout)] == ["vit", "resnet50"]
    result = ls("--where", "metrics.acc > 0.75", "--architecture", "ResNet50", "--json")
    assert [names[model["id"]] for model in json.loads(result.stdout)] == ["resnet50"]
    result = ls("--where", "(tags.team = nlp or architecture ^= vit) and not tags.stage exists")
    assert result.exit_code == 0 and "resnet-tiny" in result.stdout and "ViT.b+16" in result.stdout
    assert "ResNet50" not in result.stdout

    result = ls("--where", "tags.team = vision and colour = red")
    assert result.exit_code == 2, result.output
    assert "cannot read 'colour' at character 24" in result.output


async def test_the_readmes_searches_run(api: Api, catalog: dict[str, dict[str, Any]]) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("#### Search: `where:`")[1].split("\n### ")[0]
    queries = section.split("```graphql\n")[1:]
    assert len(queries) == 2
    first = await api.data(queries[0].split("```")[0])
    assert [node["id"] for node in first["models"]["nodes"]] == [catalog["resnet50"]["id"]]
    assert await api.data(queries[1].split("```")[0]) == {"models": {"nodes": []}}
    for line in section.splitlines():
        if line.startswith("modelci ls --where"):
            parse_where(shlex.split(line)[3])
        if line.startswith('hub.get_models(where="'):
            parse_where(line.split('"')[1])
