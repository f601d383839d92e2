"""Listing: cursor pages, newest first, filters combined."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from conftest import Api
from pymongo import AsyncMongoClient

from modelci.server.listing import KeysetListing, TimeSlicedListing
from modelci.server.settings import Settings
from modelci.server.storage import MODELS

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


BOTH_WAYS = """
query Page($first: Int, $after: String, $last: Int, $before: String) {
  models(first: $first, after: $after, last: $last, before: $before) {
    nodes { version }
    pageInfo { hasNextPage endCursor hasPreviousPage startCursor }
  }
}"""


async def test_relay_clients_page_backwards_too(api: Api) -> None:
    for version in range(1, 8):
        await api.register(version=version)

    async def page(**arguments: object) -> tuple[list[int], dict[str, object]]:
        models = (await api.data(BOTH_WAYS, arguments))["models"]
        return [node["version"] for node in models["nodes"]], models["pageInfo"]

    first, info = await page(first=3)
    assert first == [7, 6, 5] and info["hasNextPage"] and not info["hasPreviousPage"]
    second, info = await page(first=3, after=info["endCursor"])
    assert second == [4, 3, 2] and info["hasNextPage"] and info["hasPreviousPage"]
    back, back_info = await page(last=3, before=info["startCursor"])
    assert back == [7, 6, 5]
    assert back_info["hasNextPage"] and not back_info["hasPreviousPage"]
    oldest, oldest_info = await page(last=3)  # the end of the list
    assert oldest == [3, 2, 1]
    assert oldest_info["hasPreviousPage"] and not oldest_info["hasNextPage"]
    middle, _ = await page(last=2, before=oldest_info["startCursor"])
    assert middle == [5, 4]
    for mixed in ({"first": 2, "last": 2}, {"after": info["endCursor"], "last": 2}):
        assert await api.error_code(BOTH_WAYS, mixed) == "BAD_USER_INPUT"
    assert await api.error_code(BOTH_WAYS, {"last": 0}) == "BAD_USER_INPUT"
    assert await api.error_code(BOTH_WAYS, {"last": 2, "before": "nope"}) == "BAD_USER_INPUT"


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


# How long before now each model was created: a client whose clock runs five minutes
# ahead, a burst just now, then hours, days, months and decades back.
AGES = [timedelta(minutes=-5), timedelta(0), timedelta(seconds=20), timedelta(minutes=3)]
AGES += [timedelta(minutes=40), timedelta(hours=6), timedelta(days=3), timedelta(days=90)]
AGES += [timedelta(days=3 * 365), timedelta(days=40 * 365)]


def created_at(when: datetime) -> ObjectId:
    return ObjectId(ObjectId.from_datetime(when).binary[:4] + os.urandom(8))


async def test_pages_of_a_registry_with_years_of_history_are_newest_first(
    api: Api, settings: Settings, mongodb_url: str
) -> None:
    """Models created over decades (an imported registry, a clock running ahead): every
    page newest first, each model once, with and without a filter, on every server."""
    await api.register(version=1)
    client: AsyncMongoClient[dict] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        models = client[settings.database][MODELS]
        template = await models.find_one({})
        assert template is not None
        now = datetime.now(UTC)
        clones = [
            template
            | {
                "_id": created_at(now - age),
                "version": index + 2,
                "architecture": "Old" if index % 2 else "ResNet50",
            }
            for index, age in enumerate(AGES * 3)
        ]
        await models.insert_many(clones)
        await api.sees_database(client)
        everything = sorted([template, *clones], key=lambda document: document["_id"])[::-1]

        for architecture in (None, "Old"):
            expected = [
                str(document["_id"])
                for document in everything
                if architecture in (None, document["architecture"])
            ]
            seen: list[str] = []
            after = None
            while True:
                variables = {"first": 4, "after": after, "architecture": architecture}
                connection = (await api.data(PAGE, variables))["models"]
                seen += [edge["node"]["id"] for edge in connection["edges"]]
                if not connection["pageInfo"]["hasNextPage"]:
                    break
                after = connection["pageInfo"]["endCursor"]
            assert seen == expected

            # Both ways of reading a page, whichever the server above took.
            query = {"architecture": architecture} if architecture else {}
            for listing in (TimeSlicedListing(), KeysetListing()):
                pages: list[str] = []
                before = None
                while len(pages) < len(expected):
                    page = await listing.newest_first(models, query, 5, before)
                    assert page, (listing, len(pages))
                    pages += [str(document["_id"]) for document in page]
                    before = page[-1]["_id"]
                assert pages == expected
    finally:
        await client.close()
