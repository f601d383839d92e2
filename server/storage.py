"""MongoDB layout: collection names, indexes, and the document <-> domain mapping.

Every collection and index the service uses is declared here and created at start-up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from modelci.schema.context import PageRequest
from modelci.schema.domain import MLModel, utcnow
from modelci.schema.errors import BadUserInput

MODELS = "models"
JOBS = "profiling_jobs"
DEVICES = "devices"
TOKENS = "api_tokens"
WEIGHTS_BUCKET = "weights"
WEIGHT_LOCKS = "weight_locks"  # GridFS: who is committing or dropping which bytes

MODEL_KEY_FIELDS = ("architecture", "framework", "engine", "version", "task", "dataset")

MODEL_INDEXES = [
    IndexModel([(field, ASCENDING) for field in MODEL_KEY_FIELDS], unique=True, name="model_key"),
    IndexModel([("architecture", ASCENDING), ("_id", DESCENDING)], name="by_architecture"),
    # The seed's commonest lookup, by name and task together.
    IndexModel(
        [("architecture", ASCENDING), ("task", ASCENDING), ("_id", DESCENDING)],
        name="by_architecture_task",
    ),
    IndexModel([("task", ASCENDING), ("_id", DESCENDING)], name="by_task"),
    IndexModel([("framework", ASCENDING), ("_id", DESCENDING)], name="by_framework"),
    IndexModel([("engine", ASCENDING), ("_id", DESCENDING)], name="by_engine"),
    IndexModel([("dataset", ASCENDING), ("_id", DESCENDING)], name="by_dataset"),
    IndexModel([("model_status", ASCENDING), ("_id", DESCENDING)], name="by_status"),
    IndexModel([("parent_model_id", ASCENDING)], name="by_parent"),
    IndexModel([("weight.sha256", ASCENDING)], name="by_weight"),
]


JOB_INDEXES = [
    IndexModel([("status", ASCENDING), ("_id", ASCENDING)], name="by_status"),
    IndexModel([("model_id", ASCENDING), ("_id", DESCENDING)], name="by_model"),
    IndexModel([("owner", ASCENDING), ("status", ASCENDING)], name="by_owner"),
]

DEVICE_INDEXES = [
    IndexModel([("host", ASCENDING), ("device_id", ASCENDING)], unique=True, name="device_key"),
]


# Time slices need a range on _id alone answered from an index: SecantusDB's own _id
# index answers only equality, so the listed collections get a second one there.
NEWEST_FIRST_INDEX = IndexModel([("_id", DESCENDING)], name="newest_first")


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]], *, time_sliced: bool) -> None:
    """Every index, created if missing; ``time_sliced``: see ``newest_first``."""
    listed = [NEWEST_FIRST_INDEX] if time_sliced else []
    await db[MODELS].create_indexes(MODEL_INDEXES + listed)
    await db[JOBS].create_indexes(JOB_INDEXES + listed)
    await db[DEVICES].create_indexes(DEVICE_INDEXES)
    await db[TOKENS].create_index([("name", ASCENDING)], name="by_name")


async def lists_in_time_slices(db: AsyncDatabase[dict[str, Any]]) -> bool:
    """Whether listings on this server should go in time slices (``newest_first``).

    MongoDB walks a ``(filter fields, _id)`` index in order and stops at the limit, so a
    page costs its size. SecantusDB (the embedded database) fetches and decodes every
    match, sorts them and only then applies the limit: there a page costs the number
    of matches, 5 s for an unfiltered page of 100 000 models.
    """
    build = await db.client.admin.command("buildInfo")
    return "secantusVersion" in build


# Slices of ObjectId time, newest first: the last minute, hour, 3 days and 6 months
# (each 64 times the one before), then everything older. Few slices keep a filter that
# matches little cheap: each empty slice is one more round trip.
FIRST_SLICE = timedelta(minutes=1)
SLICE_GROWTH = 64
SLICES = 4
OBJECT_ID_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def newest_first(
    collection: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    limit: int,
    before: ObjectId | None,
    *,
    time_sliced: bool,
) -> list[dict[str, Any]]:
    """Up to ``limit`` documents matching ``query`` (and ``_id < before``), newest first.

    With ``time_sliced``, the same documents are read slice by slice of the creation
    time every ObjectId carries, newest slice first, until ``limit`` are found, so a
    server that reads every match before applying the limit reads only the recent
    ones. The slices are disjoint and ordered, so their concatenation is the same
    page; ids from clocks ahead of ours fall in the first slice, which has no upper
    bound. A burst of many documents within one slice still costs them all.
    """

    async def read(id_range: dict[str, Any], count: int) -> list[dict[str, Any]]:
        where = {**query, "_id": id_range} if id_range else query
        return await collection.find(where).sort("_id", DESCENDING).limit(count).to_list()

    upper: dict[str, Any] = {"$lt": before} if before is not None else {}
    if not time_sliced:
        return await read(upper, limit)
    found: list[dict[str, Any]] = []
    newest = before.generation_time if before is not None else utcnow()
    span = FIRST_SLICE
    for _ in range(SLICES):
        if newest - span <= OBJECT_ID_EPOCH:
            break
        lower = ObjectId.from_datetime(newest - span)
        found += await read({**upper, "$gte": lower}, limit - len(found))
        if len(found) >= limit:
            return found
        upper = {"$lt": lower}
        span *= SLICE_GROWTH
    return found + await read(upper, limit - len(found))


async def keyset_page(
    collection: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    page: PageRequest,
    *,
    time_sliced: bool,
) -> tuple[list[dict[str, Any]], bool, bool]:
    """A page of a newest-first list: its documents, whether more follow, whether more
    come before. Forward (``first`` after a cursor) reads older ids; backward (``last``
    before a cursor) reads the nearest newer ids, oldest first, and turns them round."""
    if page.last is not None:
        newer = {"_id": {"$gt": object_id(page.before, "before")}} if page.before else {}
        found = (
            await collection.find({**query, **newer})
            .sort("_id", ASCENDING)
            .limit(page.last + 1)
            .to_list()
        )
        return found[: page.last][::-1], page.before is not None, len(found) > page.last
    first = page.first or 0
    after = object_id(page.after, "after") if page.after is not None else None
    found = await newest_first(collection, query, first + 1, after, time_sliced=time_sliced)
    return found[:first], len(found) > first, page.after is not None


def object_id(value: str, argument: str = "id") -> ObjectId:
    """The ObjectId a client sent as a 24-hex string, or BAD_USER_INPUT."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise BadUserInput(
            f"{argument}: {value!r} is not a model id (24 hexadecimal digits)", field=argument
        ) from None


def to_bson(value: Any) -> Any:
    """Domain values as BSON: enums by value, containers recursively."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return to_bson(value.model_dump())
    if isinstance(value, dict):
        return {key: to_bson(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_bson(item) for item in value]
    return value


def model_from_document(document: dict[str, Any]) -> MLModel:
    document = dict(document)
    document["id"] = str(document.pop("_id"))
    return MLModel.model_validate(document)
