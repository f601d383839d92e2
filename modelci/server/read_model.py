"""The read model: each web process's models and aliases held in memory, kept true by the
database's change stream, answering reads without asking the database.

How it stays true:
- **Loading**: the change stream is opened first, then the models are read newest first
  (as many as the memory budget holds) and the aliases; then the stream's events since
  it opened are applied, so that nothing written during the load is missed. Reads go to
  the database until the first empty batch says the model has caught up.
- **Following**: each insert, update (its document as it is now: ``updateLookup``),
  replace and delete is applied in the stream's order; ``applied`` is the cluster time
  of the last event, or later (below).
- **Losing the stream**: from the moment a read fails, reads go to the database; the
  stream is opened again after its last resume token and, once caught up, serves again.
  A token the database no longer knows (its history pruned), a dropped collection or an
  invalidated stream rebuilds the model from the database.

Read-your-writes across processes: every write to the models and aliases is answered
with the database's operation time; ``WriteTimes`` keeps the latest of this process's,
and a request may carry a client's (``read_after_var``: the client's latest
acknowledged write, from any process). A read is answered from memory only once the
model has applied that time; it waits for it (``wait_s`` at most), else reads the
database. A change event's cluster time covers its write. A stream batch that comes
back empty covers every write acknowledged before it was asked for: this process's own
writes (``applied`` moves up to them), and whatever write the requests waiting since
before it was asked for must see, whatever time they carry. So a time no event carries
(a write that changed nothing; a time the database moved past meanwhile) is covered by
the next empty batch, and a read never waits on another write coming. A time a client
sends is only ever a reason for its own request to wait: it never moves ``applied``, so
a made-up time cannot make memory look more current than it is.

The memory budget: the newest models are held, down to ``floor`` (the newest id not
held): below it memory does not know, and a read that reaches it goes to the database
(``by_database``'s reasons, ``/readyz`` and ``/metrics`` say so).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import bson
import pymongo
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from modelci.core.domain import utcnow, write_time_parts
from modelci.core.ports import PageRequest

from .aliases import ALIASES
from .listing import FIRST_SLICE, OBJECT_ID_EPOCH
from .memory_query import Unanswerable, check_query, matches, view_of
from .metrics import Metrics
from .storage import MODELS, object_id
from .waiting import cancelled

logger = logging.getLogger("modelci.read_model")

WATCHED = (MODELS, ALIASES)
READ_MODEL_APP = "modelci-read-model"  # the stream's client, as the database names it
WRITE_COMMANDS = frozenset(["insert", "update", "delete", "findAndModify"])
# A stream's empty batch waits this long for a change: the longest a read that needs a
# time no event carries waits while the database is quiet.
AWAIT_MS = 100
LOAD_BATCH = 1000
RETRY_S = (0.1, 0.5, 1.0, 2.0)  # between attempts to open a lost stream again
# What one held model costs: its stored bytes, the decoded projection queries match
# against and its index entries. Measured with tracemalloc over profiled models and over
# models of many short metadata entries: about 8 KB a model (the projection's
# dictionaries, the index entries) and 1.6 times its stored bytes.
HELD_BASE_BYTES = 8000


def held_cost(stored_bytes: int) -> int:
    return HELD_BASE_BYTES + stored_bytes * 8 // 5


ALIAS_COST = 400  # bytes an alias takes held, with its two index entries

# The operation time of the caller's latest acknowledged write, for this request's reads.
read_after_var: ContextVar[Timestamp | None] = ContextVar("modelci_read_after", default=None)

EQUALITY_INDEXED = ("architecture", "task", "dataset", "framework", "engine", "model_status")
NAME_INDEXED = ("tags", "metric", "params")
# A candidate set this small (or this share of the held models) is walked in id order;
# a larger one is used as a membership test while the newest-first order is walked.
SMALL_CANDIDATES = 2048
CLOSE_TIMEOUT_S = 5.0


def time_text(time: Timestamp) -> str:
    return f"{time.time}.{time.inc}"


def parsed_time(text: str | None) -> Timestamp | None:
    """An operation time as ``time_text`` writes it; None for anything else."""
    parts = write_time_parts(text)
    if parts is None:
        return None
    try:
        return Timestamp(*parts)
    except (ValueError, OverflowError):  # past what a Timestamp holds
        return None


def later(first: Timestamp | None, second: Timestamp | None) -> Timestamp | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)


class WriteTimes(CommandListener):
    """The latest operation time the database gave a write to the watched collections
    through this process's client (PyMongo calls it for every command)."""

    def __init__(self, collections: tuple[str, ...] = WATCHED) -> None:
        self.collections = frozenset(collections)
        self.pending: dict[int, str] = {}
        self.last: Timestamp | None = None

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name in WRITE_COMMANDS:
            target = event.command.get(event.command_name)
            if target in self.collections:
                self.pending[event.request_id] = target

    def succeeded(self, event: CommandSucceededEvent) -> None:
        if self.pending.pop(event.request_id, None) is None:
            return
        time = event.reply.get("operationTime")
        if isinstance(time, Timestamp) and changed_something(event.command_name, event.reply):
            self.last = later(self.last, time)

    def failed(self, event: CommandFailedEvent) -> None:
        self.pending.pop(event.request_id, None)  # not acknowledged: nothing to wait for


class StreamOpens(CommandListener):
    """How many times the change stream was opened: at start, after a loss, and each time
    PyMongo resumed it by itself after an error it retries."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: CommandStartedEvent) -> None:
        pipeline = event.command.get("pipeline") if event.command_name == "aggregate" else None
        if pipeline and isinstance(pipeline[0], Mapping) and "$changeStream" in pipeline[0]:
            self.count += 1

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def changed_something(command: str, reply: Mapping[str, Any]) -> bool:
    """Whether a write's reply says it wrote: one that matched nothing (a conditional
    update refused, a duplicate key) leaves no change for a read to wait for."""
    if command == "findAndModify":
        last_error = reply.get("lastErrorObject")
        return isinstance(last_error, Mapping) and bool(last_error.get("n"))
    if command == "update":
        return bool(reply.get("nModified") or reply.get("upserted"))
    return bool(reply.get("n"))  # insert, delete


@dataclass
class Held:
    raw: RawBSONDocument
    view: dict[str, Any]
    cost: int


@dataclass
class Snapshot:
    """What memory holds: models by id (12 bytes, which order as ObjectIds do), their
    ids in order, indexes, and the aliases."""

    models: dict[bytes, Held] = field(default_factory=dict)
    order: list[bytes] = field(default_factory=list)
    floor: bytes | None = None  # this id and older: not held
    size: int = 0  # bytes held, as ``held_cost`` counts them
    by_value: dict[str, dict[Any, set[bytes]]] = field(
        default_factory=lambda: {name: {} for name in EQUALITY_INDEXED}
    )
    by_name: dict[str, dict[str, set[bytes]]] = field(
        default_factory=lambda: {name: {} for name in NAME_INDEXED}
    )
    children: dict[str, set[bytes]] = field(default_factory=dict)
    aliases: dict[str, RawBSONDocument] = field(default_factory=dict)
    aliases_of: dict[str, set[str]] = field(default_factory=dict)

    def knows(self, key: bytes) -> bool:
        """Whether memory can say if a model with this id exists."""
        return self.floor is None or key > self.floor

    def put(self, key: bytes, held: Held) -> None:
        if not self.knows(key):
            return
        self.remove(key)
        self.models[key] = held
        if not self.order or key > self.order[-1]:
            self.order.append(key)
        else:
            bisect.insort(self.order, key)
        self.size += held.cost
        self.index(key, held.view, add=True)

    def remove(self, key: bytes) -> None:
        held = self.models.pop(key, None)
        if held is None:
            return
        self.order.pop(bisect.bisect_left(self.order, key))
        self.size -= held.cost
        self.index(key, held.view, add=False)

    def index(self, key: bytes, view: Mapping[str, Any], add: bool) -> None:
        entries: list[tuple[dict[Any, set[bytes]], Any]] = []
        for name in EQUALITY_INDEXED:
            value = view.get(name)  # text, or a list of it (``model_status``)
            for each in value if isinstance(value, list) else [value]:
                if isinstance(each, str):
                    entries.append((self.by_value[name], each))
        for name in NAME_INDEXED:
            for entry in view.get(name) or []:
                if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                    entries.append((self.by_name[name], entry["name"]))
        parent = view.get("parent_model_id")
        if isinstance(parent, str):
            entries.append((self.children, parent))
        for index, value in entries:
            if add:
                index.setdefault(value, set()).add(key)
            else:
                ids = index.get(value)
                if ids is not None:
                    ids.discard(key)
                    if not ids:
                        del index[value]

    def evict_to(self, budget: int) -> None:
        """The oldest models forgotten until what is held fits the budget."""
        while self.size > budget and self.order:
            self.floor = self.order[0]  # held ids are all above the floor: it only rises
            self.remove(self.floor)

    def put_alias(self, document: RawBSONDocument) -> None:
        self.remove_alias(document["_id"])
        self.aliases[document["_id"]] = document
        self.aliases_of.setdefault(document["model_id"], set()).add(document["_id"])
        self.size += ALIAS_COST

    def remove_alias(self, name: str) -> None:
        document = self.aliases.pop(name, None)
        if document is None:
            return
        names = self.aliases_of.get(document["model_id"], set())
        names.discard(name)
        if not names:
            self.aliases_of.pop(document["model_id"], None)
        self.size -= ALIAS_COST


class Rebuild(Exception):
    """The stream cannot go on (a drop, an invalidation, history lost): load again."""


class ReadModel:
    """Models and aliases in memory, following the change stream (see the module)."""

    def __init__(
        self,
        url: str,
        database: str,
        client_options: Mapping[str, Any],
        writes: WriteTimes,
        budget_bytes: int,
        wait_s: float,
        metrics: Metrics | None = None,
    ) -> None:
        # A client of its own: the stream's waiting reads keep no request waiting for a
        # connection, the database can name it (``READ_MODEL_APP``), and its opening of
        # the stream, by this model or by PyMongo resuming it, is counted.
        self.opens = StreamOpens()
        self.client: AsyncMongoClient[Any] = AsyncMongoClient(
            url, appname=READ_MODEL_APP, event_listeners=[self.opens], **client_options
        )
        self.codec_options: CodecOptions[Any] = self.client.codec_options
        self.raw_options: CodecOptions[Any] = self.codec_options.with_options(
            document_class=RawBSONDocument
        )
        self.db: AsyncDatabase[Any] = self.client.get_database(
            database, codec_options=self.raw_options
        )
        self.writes = writes
        self.budget = budget_bytes
        self.wait_s = wait_s
        self.held = Snapshot()
        self.serving = False
        self.state = "loading"  # loading, serving, resuming, rebuilding or off
        self.why: str | None = None  # what lost the stream, in words
        self.applied: Timestamp | None = None  # every write up to this time is applied
        # Batches asked for, and the last one that came back empty (a number of the first).
        self.batches_asked = 0
        self.emptied = 0
        self.token: Mapping[str, Any] | None = None
        self.progress = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.loads = 0
        self.load_seconds: float | None = None
        self.metrics = metrics
        # Reads answered, by where: "memory", or why the database answered instead.
        self.reads: dict[str, int] = {}

    # Running

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name="read model")

    async def close(self) -> None:
        await cancelled(self.task)  # again and again: the driver can take one in
        with pymongo.timeout(CLOSE_TIMEOUT_S):
            await self.client.close()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                stream = await self.open()
                async with stream:
                    if not self.serving and self.token is None:
                        await self.load()
                    failures = 0
                    await self.follow(stream)
            except asyncio.CancelledError:
                raise
            except Rebuild as why:
                self.lose("rebuilding", str(why))
                self.token = None
            except OperationFailure as error:
                if is_unsupported(error):
                    self.off("the database has no change streams (a replica set has them)")
                    return
                self.lose("resuming", f"stream lost: {error}")
                if not error.has_error_label("ResumableChangeStreamError"):
                    self.token = None  # the token is refused: load again
                failures += 1
            except PyMongoError as error:
                self.lose("resuming", f"stream lost: {type(error).__name__}: {error}")
                failures += 1
            except Exception as error:  # a change it could not apply: never serve past it
                logger.exception("read model: an unexpected error; loading again")
                self.lose("rebuilding", f"{type(error).__name__}: {error}")
                self.token = None
                failures += 1
            if failures:
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S)) - 1])

    async def open(self) -> AsyncChangeStream[Any]:
        pipeline = [{"$match": {"ns.coll": {"$in": list(WATCHED)}}}]
        return await self.db.watch(
            pipeline,
            full_document="updateLookup",
            resume_after=self.token,
            max_await_time_ms=AWAIT_MS,
        )

    def lose(self, state: str, why: str) -> None:
        if self.serving:
            logger.warning("read model %s (%s); reads go to the database meanwhile", state, why)
        self.serving = False
        self.state, self.why = state, why
        self.wake()

    def off(self, why: str) -> None:
        logger.info("read model off: %s; reads go to the database", why)
        self.serving = False
        self.state, self.why = "off", why
        self.held = Snapshot()
        self.wake()

    async def load(self) -> None:
        """The newest models the budget holds, and every alias.

        Read in slices of creation time (the time every ObjectId starts with), newest
        first, each twice as long as the one before, until the budget is full: a budget
        that holds the newest models reads about twice as many as it keeps, not all.
        Each slice is read in the database's own order, not sorted (a database that
        sorts before it answers, SecantusDB, would read and sort the whole slice before
        the first batch); the oldest are let go as the budget fills, and only those kept
        are decoded."""
        self.state = "loading"
        started = asyncio.get_running_loop().time()
        kept: list[tuple[bytes, RawBSONDocument, int]] = []  # a heap, oldest first
        size, floor = 0, None
        upper: ObjectId | None = None  # the first slice has no upper end: clocks ahead
        span, now, read = FIRST_SLICE, utcnow(), 0
        while floor is None:
            lower = ObjectId.from_datetime(now - span) if now - span > OBJECT_ID_EPOCH else None
            bounds = {"$gte": lower} if lower is not None else {}
            if upper is not None:
                bounds["$lt"] = upper
            cursor = self.db[MODELS].find({"_id": bounds} if bounds else {})
            async for document in cursor.batch_size(LOAD_BATCH):
                raw = self.copied(document)
                key = id_of(raw)
                if key is None or (floor is not None and key <= floor):
                    continue  # not a model the hub wrote, or older than the budget holds
                cost = held_cost(len(raw.raw))
                heapq.heappush(kept, (key, raw, cost))
                size += cost
                while size > self.budget:
                    floor, _, freed = heapq.heappop(kept)  # kept ids are above it: it rises
                    size -= freed
                read += 1
                if read % LOAD_BATCH == 0:
                    await asyncio.sleep(0)  # requests go on meanwhile
            if lower is None:
                break  # back to the first ObjectId's time: every model read
            upper, span = lower, span * 2
        fresh = Snapshot(floor=floor)
        for count, (key, raw, _) in enumerate(sorted(kept, key=lambda each: each[0]), 1):
            fresh.put(key, self.held_of(raw))  # in id order: each one appended
            if count % LOAD_BATCH == 0:
                await asyncio.sleep(0)
        async for alias in self.db[ALIASES].find({}).sort("_id", ASCENDING):
            fresh.put_alias(self.copied(alias))
        self.held = fresh
        self.loads += 1
        self.load_seconds = asyncio.get_running_loop().time() - started
        logger.info(
            "read model loaded %d models%s in %.2f s",
            len(kept),
            "" if fresh.floor is None else " (the newest; older ones are read from the database)",
            self.load_seconds,
        )

    async def follow(self, stream: AsyncChangeStream[Any]) -> None:
        while True:
            # Every write acknowledged before this batch is asked for is in it or before.
            self.batches_asked += 1
            asked, covers = self.batches_asked, self.writes.last
            change = await stream.try_next()
            if change is None:
                self.applied = later(self.applied, covers)
                self.emptied = asked
                if not self.serving:
                    self.serving = True
                    self.state, self.why = "serving", None
                    logger.info("read model serving")
            else:
                self.apply(change)
            self.token = stream.resume_token
            self.wake()

    def apply(self, change: Mapping[str, Any]) -> None:
        operation = change["operationType"]
        if operation in ("drop", "rename", "dropDatabase", "invalidate"):
            raise Rebuild(f"{operation} of {change.get('ns')}")
        collection = change["ns"]["coll"]
        key = change["documentKey"]["_id"]
        document = change.get("fullDocument")
        if collection == MODELS and not isinstance(key, ObjectId):
            pass  # not a model the hub wrote: no request can name it (``id_of``)
        elif collection == MODELS:
            if operation == "delete" or document is None:  # gone before it was looked up
                self.held.remove(key.binary)
            else:
                self.held.put(key.binary, self.held_of(self.copied(document)))
                self.held.evict_to(self.budget)
        elif operation == "delete" or document is None:
            self.held.remove_alias(key)
        else:
            self.held.put_alias(self.copied(document))
        self.applied = later(self.applied, change.get("clusterTime"))

    def wake(self) -> None:
        self.progress.set()
        self.progress = asyncio.Event()

    def copied(self, document: RawBSONDocument) -> RawBSONDocument:
        """The document on bytes of its own: one read from a batch would keep the whole
        batch's reply alive."""
        return RawBSONDocument(bytes(document.raw), self.raw_options)

    def held_of(self, raw: RawBSONDocument) -> Held:
        """A model to hold, from its own copy of the document (``copied``)."""
        view = view_of(bson.decode(raw.raw, self.codec_options))
        return Held(raw, view, held_cost(len(raw.raw)))

    # Whether memory may answer

    async def current(self) -> str | None:
        """None when memory may answer this request's reads (it has applied every write
        the request must see, waiting ``wait_s`` at most for that); else why not."""
        if not self.serving:
            return self.state
        needed = later(read_after_var.get(), self.writes.last)
        if needed is None or (self.applied is not None and self.applied >= needed):
            return None
        after = self.batches_asked + 1  # an empty batch asked for from now on covers it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while self.serving and not (
            self.emptied >= after or (self.applied is not None and self.applied >= needed)
        ):
            progress = self.progress
            try:
                async with asyncio.timeout(deadline - loop.time()):
                    await progress.wait()
            except TimeoutError:
                return "lagging"
        return None if self.serving else self.state

    def count(self, answered_by: str) -> None:
        """A read answered by "memory", or by the database for a reason (a state, "lagging"
        or "not_held")."""
        self.reads[answered_by] = self.reads.get(answered_by, 0) + 1
        if self.metrics is not None:
            self.metrics.reads.labels(answered_by).inc()

    # Reads (None: memory cannot tell; ask the database)

    def model(self, model_id: str) -> RawBSONDocument | Unknown | None:
        key = object_id(model_id).binary
        held = self.held.models.get(key)
        if held is not None:
            return held.raw
        return None if self.held.knows(key) else UNKNOWN

    def page(
        self, query: Mapping[str, Any], page: PageRequest
    ) -> tuple[list[RawBSONDocument], bool, bool] | Unknown:
        """A newest-first page, as ``listing.KeysetListing`` reads it from the database."""
        try:
            check_query(query)
        except Unanswerable:
            return UNKNOWN
        held = self.held
        candidates = self.candidates(query)
        if candidates is not None and len(candidates) <= max(
            SMALL_CANDIDATES, len(held.order) // 8
        ):
            ids, candidates = sorted(candidates), None  # walk the candidates themselves
        else:
            ids = held.order  # walk every held model, newest first

        def meets(key: bytes) -> bool:
            if candidates is not None and key not in candidates:
                return False
            return matches(query, held.models[key].view)

        if page.last is not None:
            before = object_id(page.before, "before").binary if page.before else None
            # Read oldest first from ``before``: every model past it must be held.
            if held.floor is not None and (before is None or not held.knows(before)):
                return UNKNOWN
            start = bisect.bisect_right(ids, before) if before is not None else 0
            found = take(ascending(ids, start), meets, page.last + 1)
            documents = [held.models[key].raw for key in found[: page.last]][::-1]
            return documents, page.before is not None, len(found) > page.last
        first = page.first or 0
        after = object_id(page.after, "after").binary if page.after is not None else None
        end = bisect.bisect_left(ids, after) if after is not None else len(ids)
        found = take(descending(ids, end), meets, first + 1)
        if len(found) <= first and held.floor is not None:
            return UNKNOWN  # the rest may be among the models not held
        documents = [held.models[key].raw for key in found[:first]]
        return documents, len(found) > first, page.after is not None

    def candidates(self, query: Mapping[str, Any]) -> set[bytes] | None:
        """The ids that may match, from the indexes (None: any held model may)."""
        if list(query) == ["$or"]:
            branches = [self.candidates(branch) for branch in query["$or"]]
            if any(branch is None for branch in branches):
                return None
            return set().union(*[branch for branch in branches if branch is not None])
        best: set[bytes] | None = None
        for name, condition in query.items():
            found: set[bytes] | None = None
            if name in EQUALITY_INDEXED and isinstance(condition, str):
                found = self.held.by_value[name].get(condition, set())
            elif name in NAME_INDEXED:
                for entry_name in entry_names(condition):
                    ids = self.held.by_name[name].get(entry_name, set())
                    found = ids if found is None or len(ids) < len(found) else found
            if found is not None and (best is None or len(found) < len(best)):
                best = found
        return best

    def children(self, model_ids: list[str]) -> list[list[RawBSONDocument]] | Unknown:
        """Each model's variants, oldest first."""
        if self.held.floor is not None:
            return UNKNOWN
        return [
            [self.held.models[key].raw for key in sorted(self.held.children.get(model_id, ()))]
            for model_id in model_ids
        ]

    def alias(self, name: str) -> RawBSONDocument | None:
        return self.held.aliases.get(name)

    def aliases(self, limit: int) -> list[RawBSONDocument]:
        return [self.held.aliases[name] for name in sorted(self.held.aliases)[:limit]]

    def aliases_of(self, model_ids: list[str]) -> list[list[str]]:
        return [sorted(self.held.aliases_of.get(model_id, ())) for model_id in model_ids]

    # Reporting

    def report(self) -> dict[str, Any]:
        """What /readyz says of the read model."""
        held = self.held
        return {
            "state": self.state,
            "why": self.why,
            "models": len(held.models),
            "aliases": len(held.aliases),
            "bytes": held.size,
            "budgetBytes": self.budget,
            "complete": held.floor is None,
            "loads": self.loads,
            "streamOpens": self.opens.count,
            "loadSeconds": None if self.load_seconds is None else round(self.load_seconds, 3),
            "reads": dict(self.reads),
        }


class Unknown:
    """Memory cannot tell: the database must."""


UNKNOWN = Unknown()


def id_of(document: RawBSONDocument) -> bytes | None:
    """A stored model's id (12 bytes), read from its first element without decoding the
    rest (MongoDB and SecantusDB store ``_id`` first); None for an id that is not an
    ObjectId, which no model the hub writes has and no request can name."""
    raw = document.raw
    if raw[4] == 0x07 and raw[5:9] == b"_id\x00":  # an ObjectId named _id
        return bytes(raw[9:21])
    identifier = document["_id"]
    return identifier.binary if isinstance(identifier, ObjectId) else None


def entry_names(condition: Any) -> list[str]:
    """The entry names an ``$elemMatch`` (or an ``$all`` of them) requires."""
    if not isinstance(condition, Mapping):
        return []
    if list(condition) == ["$elemMatch"]:
        name = (
            condition["$elemMatch"].get("name")
            if isinstance(condition["$elemMatch"], Mapping)
            else None
        )
        return [name] if isinstance(name, str) else []
    if list(condition) == ["$all"]:
        return [name for part in condition["$all"] for name in entry_names(part)]
    return []


def ascending(ids: list[bytes], start: int) -> Iterator[bytes]:
    for index in range(start, len(ids)):
        yield ids[index]


def descending(ids: list[bytes], end: int) -> Iterator[bytes]:
    for index in range(end - 1, -1, -1):
        yield ids[index]


def take(keys: Iterator[bytes], meets: Callable[[bytes], bool], limit: int) -> list[bytes]:
    found: list[bytes] = []
    for key in keys:
        if len(found) >= limit:
            break
        if meets(key):
            found.append(key)
    return found


def is_unsupported(error: OperationFailure) -> bool:
    """A standalone server's refusal of change streams."""
    return error.code == 40573 or "only supported on replica sets" in str(error)
