"""MongoDB layout: collection names, indexes, and the document <-> domain mapping.

Every collection and index the service uses is declared here and created at start-up,
but for the index a listing strategy brings with it (``listing.py``).

A model's free metadata is stored as arrays of sub-documents, each name once:
``metric: [{name, value: number}]``, ``params: [{name, value: text}]``,
``tags: [{name, value: text}]``, beside ``description`` (Markdown), ``source``
(``{uri, run_id}`` or null) and ``created_by`` (a token's name). Arrays, not documents
keyed by name: one multikey index per array (``by_tag``, ``by_metric``, ``by_param``)
serves any name, and a condition on one entry is one ``$elemMatch`` (``{tags:
{$elemMatch: {name: "team", value: "vision"}}}``, ``{metric: {$elemMatch: {name: "acc",
value: {$gt: 0.75}}}}``), where keys would need an index per name and names free of
'.' and '$'. A tag is set or removed in one conditional write (``registry.py``).

A search (``models(where: …)``, ``model_query.py``) reads through these indexes: a
tag, a metric or a param by name (and value: ``by_tag``, ``by_metric`` with a
threshold's range on ``metric.value``, ``by_param``), the architecture (``by_architecture``:
an exact name is a point, a prefix ignoring case, ``{$regex: "^res", $options: "i"}``,
walks the index's keys, not the documents), the task and dataset (``by_task``,
``by_dataset``, ``by_task_dataset``), the engine, framework and status; each branch of an
``$or`` picks its own. Creation times (``create_time``) and contains-patterns have no
index of their own: the newest-first walk of ``_id`` filters them.

Versions: ``model_versions`` holds, per (architecture, task, dataset), the last version
number the hub gave (``last``); the next is taken with one ``$inc``, after raising it
(``$max``) to the highest version registered, so that numbers given by hand or imported
are never given again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.errors import InvalidId
from bson.raw_bson import RawBSONDocument
from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from modelci.core.domain import MLModel
from modelci.core.errors import BadUserInput

MODELS = "models"
JOBS = "profiling_jobs"
DEVICES = "devices"
TOKENS = "api_tokens"
WEIGHTS_BUCKET = "weights"
WEIGHT_LOCKS = "weight_locks"  # GridFS: who is committing or dropping which bytes
VERSIONS = "model_versions"  # the last version given per (architecture, task, dataset)

MODEL_KEY_FIELDS = ("architecture", "framework", "engine", "version", "task", "dataset")
DYNAMIC_RESULTS = "profile_result.dynamic_results"

MODEL_INDEXES = [
    IndexModel([(field, ASCENDING) for field in MODEL_KEY_FIELDS], unique=True, name="model_key"),
    IndexModel([("architecture", ASCENDING), ("_id", DESCENDING)], name="by_architecture"),
    # ML-Model-CI's commonest lookup, by name and task together.
    IndexModel(
        [("architecture", ASCENDING), ("task", ASCENDING), ("_id", DESCENDING)],
        name="by_architecture_task",
    ),
    IndexModel([("task", ASCENDING), ("_id", DESCENDING)], name="by_task"),
    # A search's commonest pair (``models(where: {task, dataset})``).
    IndexModel(
        [("task", ASCENDING), ("dataset", ASCENDING), ("_id", DESCENDING)],
        name="by_task_dataset",
    ),
    IndexModel([("framework", ASCENDING), ("_id", DESCENDING)], name="by_framework"),
    IndexModel([("engine", ASCENDING), ("_id", DESCENDING)], name="by_engine"),
    IndexModel([("dataset", ASCENDING), ("_id", DESCENDING)], name="by_dataset"),
    IndexModel([("model_status", ASCENDING), ("_id", DESCENDING)], name="by_status"),
    IndexModel([("parent_model_id", ASCENDING)], name="by_parent"),
    # models(profile: …): a device's results (by id, or by name), batch sizes in order.
    IndexModel(
        [
            (f"{DYNAMIC_RESULTS}.device_id", ASCENDING),
            (f"{DYNAMIC_RESULTS}.batch", ASCENDING),
            ("_id", DESCENDING),
        ],
        name="by_profiled_device",
    ),
    IndexModel(
        [
            (f"{DYNAMIC_RESULTS}.device_name", ASCENDING),
            (f"{DYNAMIC_RESULTS}.batch", ASCENDING),
            ("_id", DESCENDING),
        ],
        name="by_profiled_device_name",
    ),
    IndexModel([("weight.sha256", ASCENDING)], name="by_weight"),
    # The highest version of an architecture, task and dataset (numbering the next one).
    IndexModel(
        [
            ("architecture", ASCENDING),
            ("task", ASCENDING),
            ("dataset", ASCENDING),
            ("version", DESCENDING),
        ],
        name="by_version_line",
    ),
    # Free metadata, one entry of its array by name and value (see the module's doc).
    *(
        IndexModel(
            [(f"{field}.name", ASCENDING), (f"{field}.value", ASCENDING), ("_id", DESCENDING)],
            name=f"by_{name}",
        )
        for field, name in (("tags", "tag"), ("metric", "metric"), ("params", "param"))
    ),
]


JOB_INDEXES = [
    IndexModel([("status", ASCENDING), ("_id", ASCENDING)], name="by_status"),
    IndexModel([("model_id", ASCENDING), ("_id", DESCENDING)], name="by_model"),
    IndexModel([("owner", ASCENDING), ("status", ASCENDING)], name="by_owner"),
]

DEVICE_INDEXES = [
    IndexModel([("host", ASCENDING), ("device_id", ASCENDING)], unique=True, name="device_key"),
]


# The collections listed newest first, a page at a time (``listing.py``).
LISTED = (MODELS, JOBS)


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Every index of the layout, created if missing; the listing strategy adds its own."""
    await db[MODELS].create_indexes(MODEL_INDEXES)
    await db[JOBS].create_indexes(JOB_INDEXES)
    await db[DEVICES].create_indexes(DEVICE_INDEXES)
    await db[TOKENS].create_index([("name", ASCENDING)], name="by_name")


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
    document.pop("outbox", None)  # events not yet published (``outbox.py``)
    return MLModel.model_validate(document)


# What a model read before costs to keep, per byte of its stored document: the domain
# objects take 4 to 13 times the BSON with the key (the document itself) besides: 8× for
# a profiled model (2.2 KB stored, 15 KB validated), up to about 12× for one of many
# short metrics, the densest shape within the schema's limits (tracemalloc). Ten keeps
# the memory near the budget whatever the models are like.
MEMORY_PER_STORED_BYTE = 10


class ModelDocuments:
    """Stored model documents as domain models, validated once per content.

    Reading a model validates its document into the domain classes: 40–50 µs a profiled
    model, a third of what a page of 100 costs the hub. Here documents are read
    undecoded (``RawBSONDocument``) and a document whose bytes were read before, while
    its validated model is still kept, is neither decoded nor validated again. The
    bytes themselves are the key, so any write, from any process, is a new key: nothing
    stale can be served. The least recently read go first once the kept models would
    take more than ``memory_bytes`` (0: keep none). The models returned are shared
    between requests: read them, never change them.
    """

    def __init__(self, collection: AsyncCollection[dict[str, Any]], memory_bytes: int) -> None:
        self.codec_options = collection.codec_options
        raw_options: CodecOptions[Any] = collection.codec_options.with_options(
            document_class=RawBSONDocument
        )
        self.collection: AsyncCollection[Any] = collection.with_options(codec_options=raw_options)
        self.memory_bytes = memory_bytes
        self.kept: OrderedDict[bytes, MLModel] = OrderedDict()
        self.kept_bytes = 0

    def model(self, document: Mapping[str, Any]) -> MLModel:
        """The domain model of a document read through ``collection``."""
        if not isinstance(document, RawBSONDocument):
            raise TypeError("model documents are read through ModelDocuments.collection")
        key = bytes(document.raw)  # a memoryview (large documents) would pin its reply
        model = self.kept.get(key)
        if model is not None:
            self.kept.move_to_end(key)
            return model
        model = model_from_document(bson.decode(key, self.codec_options))
        cost = len(key) * MEMORY_PER_STORED_BYTE
        if cost <= self.memory_bytes:
            self.kept[key] = model
            self.kept_bytes += cost
            while self.kept_bytes > self.memory_bytes:
                forgotten, _ = self.kept.popitem(last=False)
                self.kept_bytes -= len(forgotten) * MEMORY_PER_STORED_BYTE
        return model

    def models(self, documents: Sequence[Mapping[str, Any]]) -> list[MLModel]:
        return [self.model(document) for document in documents]
