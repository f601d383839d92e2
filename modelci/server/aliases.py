"""Model aliases over MongoDB (``schema.context.AliasRegistry``): one name points at one
model at a time, as MLflow's "champion"; moving it is one atomic document write.

A document is ``{_id: alias, model_id, update_time}``: the name is the key, so two
writers of one name can only take turns. The names' rules are the use cases'
(``usecases.checked_alias``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from modelci.core.domain import ModelAlias, utcnow
from modelci.core.errors import NotFound
from modelci.core.registry_events import EventType, RegistryEvent, new_event

from .outbox import delete_announced, with_event

ALIASES = "model_aliases"
ALIAS_INDEXES = [IndexModel([("model_id", ASCENDING)], name="by_model")]


def removed_event(document: Mapping[str, Any]) -> RegistryEvent:
    return new_event(EventType.ALIAS_DELETED, document["model_id"], alias=document["_id"])


def alias_from_document(document: dict[str, Any]) -> ModelAlias:
    return ModelAlias(
        alias=document["_id"], model_id=document["model_id"], update_time=document["update_time"]
    )


class MongoAliasRegistry:
    def __init__(self, aliases: AsyncCollection[dict[str, Any]]) -> None:
        self.aliases = aliases

    async def ensure_indexes(self) -> None:
        await self.aliases.create_indexes(ALIAS_INDEXES)

    async def point(self, alias: str, model_id: str) -> ModelAlias:
        """Point ``alias`` at ``model_id``, creating it or moving it from its model."""
        # A revision per pointing: a tombstone of its removal names this one, not a later
        # alias of the same name (``outbox.delete_announced``).
        change = with_event(
            {"$set": {"model_id": model_id, "update_time": utcnow(), "revision": ObjectId()}},
            new_event(EventType.ALIAS_SET, model_id, alias=alias),
        )
        for _ in range(2):  # two first upserts of one name race on _id: the loser retries
            try:
                document = await self.aliases.find_one_and_update(
                    {"_id": alias},
                    change,
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                continue
            if document is not None:
                return alias_from_document(document)
        raise RuntimeError(f"alias {alias}: the upsert kept colliding")  # pragma: no cover

    async def remove(self, alias: str) -> ModelAlias:
        document = await delete_announced(
            self.aliases, {"_id": alias}, removed_event, version="revision"
        )
        if document is None:
            raise NotFound(f"no alias {alias!r} (modelAliases lists them)", alias=alias)
        return alias_from_document(document)

    async def resolve(self, alias: str) -> str:
        """The id of the model ``alias`` names; NOT_FOUND when it names none."""
        document = await self.aliases.find_one({"_id": alias})
        if document is None:
            raise NotFound(f"no alias {alias!r} (modelAliases lists them)", alias=alias)
        return str(document["model_id"])

    async def all(self, limit: int) -> list[ModelAlias]:
        documents = await self.aliases.find({}).sort("_id", ASCENDING).limit(limit).to_list()
        return [alias_from_document(document) for document in documents]

    async def of_models(self, model_ids: list[str]) -> list[list[str]]:
        """Each model's aliases, by name; for the per-request DataLoader."""
        found: dict[str, list[str]] = {model_id: [] for model_id in model_ids}
        cursor = self.aliases.find({"model_id": {"$in": model_ids}}).sort("_id", ASCENDING)
        for document in await cursor.to_list():
            found[document["model_id"]].append(document["_id"])
        return [found[model_id] for model_id in model_ids]

    async def drop_for(self, model_ids: list[str]) -> list[str]:
        """Remove the aliases of deleted models; the names removed."""
        names = [name for names in await self.of_models(model_ids) for name in names]
        for name in names:  # one by one, each with its event
            await delete_announced(
                self.aliases,
                {"_id": name, "model_id": {"$in": model_ids}},
                removed_event,
                version="revision",
            )
        return names
