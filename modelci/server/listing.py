"""How a newest-first page of a collection is read: one strategy per database, chosen once.

Both strategies page by keyset on ``_id`` (cursors are ids); they differ in how they
ask the database for the ``limit`` newest matches. MongoDB walks a
``(filter fields, _id)`` index in order and stops at the limit, so a page costs its
size: one sorted, limited query (``KeysetListing``). SecantusDB (the embedded database)
fetches and decodes every match, sorts them and only then applies the limit: there a
page costs the number of matches, 5 s for an unfiltered page of 100 000 models, so it
reads in slices of creation time, newest first (``TimeSlicedListing``), and a query
that is an ``$or`` of a few branches branch by branch. The hub's
services pick one when they are built (``listing_for``) and hand it to the repositories.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from modelci.core.domain import utcnow
from modelci.core.ports import PageRequest

from .embedded import is_embedded_database
from .model_query import MAX_BRANCHES
from .storage import LISTED, object_id

Documents = list[dict[str, Any]]


class Listing(Protocol):
    async def prepare(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        """Create what this strategy needs on the listed collections (run at start-up)."""
        ...

    async def page(
        self, collection: AsyncCollection[dict[str, Any]], query: dict[str, Any], page: PageRequest
    ) -> tuple[Documents, bool, bool]:
        """A page of a newest-first list: its documents, whether more follow, whether more
        come before."""
        ...


async def listing_for(db: AsyncDatabase[dict[str, Any]]) -> Listing:
    """Time slices on the embedded database, the plain keyset elsewhere."""
    return TimeSlicedListing() if await is_embedded_database(db.client) else KeysetListing()


async def read_newest(
    collection: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    id_range: dict[str, Any],
    limit: int,
) -> Documents:
    # The range first: where no compound index covers the query (an equality and an
    # $elemMatch, say), SecantusDB reads through the index of the first field it can,
    # and a slice of _id holds fewer documents than every one of an architecture.
    where = {"_id": id_range, **query} if id_range else query
    return await collection.find(where).sort("_id", DESCENDING).limit(limit).to_list()


class KeysetListing:
    """One sorted, limited query a page: what a database that stops at the limit wants."""

    async def prepare(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        """Nothing beyond the layout's own ``(filter fields, _id)`` indexes."""

    async def page(
        self, collection: AsyncCollection[dict[str, Any]], query: dict[str, Any], page: PageRequest
    ) -> tuple[Documents, bool, bool]:
        """Forward (``first`` after a cursor) reads older ids; backward (``last`` before a
        cursor) reads the nearest newer ids, oldest first, and turns them round."""
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
        found = await self.newest_first(collection, query, first + 1, after)
        return found[:first], len(found) > first, page.after is not None

    async def newest_first(
        self,
        collection: AsyncCollection[dict[str, Any]],
        query: dict[str, Any],
        limit: int,
        before: ObjectId | None,
    ) -> Documents:
        """Up to ``limit`` documents matching ``query`` (and ``_id < before``), newest first."""
        return await read_newest(
            collection, query, {"$lt": before} if before is not None else {}, limit
        )


# Time slices need a range on _id alone answered from an index: SecantusDB's own _id
# index answers only equality, so the listed collections get a second one there.
NEWEST_FIRST_INDEX = IndexModel([("_id", DESCENDING)], name="newest_first")

# Slices of ObjectId time, newest first: the last minute, hour, 3 days and 6 months
# (each 64 times the one before), then everything older. Few slices keep a filter that
# matches little cheap: each empty slice is one more round trip.
FIRST_SLICE = timedelta(minutes=1)
SLICE_GROWTH = 64
SLICES = 4
OBJECT_ID_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimeSlicedListing(KeysetListing):
    """The same pages, read slice by slice of the creation time every ObjectId carries,
    for a database that reads every match before it applies the limit."""

    async def prepare(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        for name in LISTED:
            await db[name].create_indexes([NEWEST_FIRST_INDEX])

    async def newest_first(
        self,
        collection: AsyncCollection[dict[str, Any]],
        query: dict[str, Any],
        limit: int,
        before: ObjectId | None,
    ) -> Documents:
        """A query that is one ``$or`` of a few branches is read branch by branch, each
        in slices, and the newest ``limit`` of them all kept: SecantusDB reads every
        document for a top-level ``$or``, and the newest of a union are among the newest
        of its parts."""
        branches = query["$or"] if list(query) == ["$or"] else [query]
        if len(branches) == 1 or len(branches) > MAX_BRANCHES:
            return await self.sliced(collection, query, limit, before)
        found: dict[ObjectId, Any] = {}
        for branch in branches:
            for document in await self.sliced(collection, branch, limit, before):
                found[document["_id"]] = document
        return [found[key] for key in sorted(found, reverse=True)[:limit]]

    async def sliced(
        self,
        collection: AsyncCollection[dict[str, Any]],
        query: dict[str, Any],
        limit: int,
        before: ObjectId | None,
    ) -> Documents:
        """Newest slice first, until ``limit`` are found, so that only the recent matches
        are read. The slices are disjoint and ordered, so their concatenation is the
        plain keyset's page; ids from clocks ahead of ours fall in the first slice, which
        has no upper bound. A burst of many documents within one slice still costs them
        all."""
        upper: dict[str, Any] = {"$lt": before} if before is not None else {}
        found: Documents = []
        newest = before.generation_time if before is not None else utcnow()
        span = FIRST_SLICE
        for _ in range(SLICES):
            if newest - span <= OBJECT_ID_EPOCH:
                break
            lower = ObjectId.from_datetime(newest - span)
            found += await read_newest(
                collection, query, {**upper, "$gte": lower}, limit - len(found)
            )
            if len(found) >= limit:
                return found
            upper = {"$lt": lower}
            span *= SLICE_GROWTH
        return found + await read_newest(collection, query, upper, limit - len(found))
