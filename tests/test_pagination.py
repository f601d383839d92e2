"""Listing: cursor pages, newest first, filters combined."""

from __future__ import annotations

from conftest import Api

PAGE = """
query Page($first: Int!, $after: String, $architecture: String, $framework: Framework,
           $engine: Engine, $version: Int, $dataset: String, $status: ModelStatus) {
  models(first: $first, after: $after, architecture: $architecture, framework: $framework,
         engine: $engine, version: $version, dataset: $dataset, status: $status) {
    edges { cursor node { id version } }
    nodes { id }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def test_pages_cover_every_model_once_newest_first(api: Api) -> None:
    ids = [(await api.register(version=version))["id"] for version in range(1, 26)]

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = await api.data(PAGE, {"first": 10, "after": after})
        connection = data["models"]
        pages += 1
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        assert [node["id"] for node in connection["nodes"]] == [
            edge["node"]["id"] for edge in connection["edges"]
        ]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
        assert after == connection["edges"][-1]["cursor"]
    assert pages == 3
    assert seen == list(reversed(ids))


async def test_filters_combine(api: Api) -> None:
    await api.register(version=1, dataset="ImageNet", framework="PyTorch", engine="NONE")
    serving = await api.register(
        version=1,
        dataset="ImageNet",
        framework="TensorFlow",
        engine="TFS",
        modelStatus=["CONVERTED", "PUBLISHED"],
    )
    await api.register(version=2, dataset="CIFAR10", framework="TensorFlow", engine="TFS")

    async def ids(**filters: object) -> list[str]:
        data = await api.data(PAGE, {"first": 100, **filters})
        return [edge["node"]["id"] for edge in data["models"]["edges"]]

    assert await ids(framework="TensorFlow", dataset="ImageNet") == [serving["id"]]
    assert await ids(engine="TFS", version=1) == [serving["id"]]
    assert await ids(status="CONVERTED") == [serving["id"]]
    assert len(await ids(architecture="ResNet50")) == 3
    assert await ids(architecture="ResNet50", dataset="COCO") == []
