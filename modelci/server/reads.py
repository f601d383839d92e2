"""The reads GraphQL makes of models and aliases (``core.ports.ModelReads`` and
``AliasReads``): from the process's read model when it is current for the request
(``read_model.py``), else from the database, with the same answers either way.

The rules of a change read the database themselves (``MongoModelRegistry``): a check
made before a write must see what the write will race with, not what memory holds.
"""

from __future__ import annotations

from modelci.core.domain import MLModel, ModelAlias, ModelFilter
from modelci.core.errors import NotFound
from modelci.core.ports import Page, PageRequest

from .aliases import MongoAliasRegistry, alias_from_document
from .model_query import models_query
from .read_model import ReadModel, Unknown
from .registry import MongoModelRegistry
from .storage import object_id


class FromMemory:
    """Reads answered from the read model when it is current for the request."""

    def __init__(self, memory: ReadModel) -> None:
        self.memory = memory

    async def answerable(self) -> bool:
        """Whether memory may answer now; each read counted by what answers it."""
        why = await self.memory.current()
        if why is not None:
            self.memory.count(why)
        return why is None

    def answered(self) -> None:
        self.memory.count("memory")

    def unknown(self) -> None:
        self.memory.count("not_held")


class ModelReads(FromMemory):
    def __init__(self, memory: ReadModel, registry: MongoModelRegistry) -> None:
        super().__init__(memory)
        self.registry = registry

    async def get(self, model_id: str) -> MLModel:
        object_id(model_id)  # BAD_USER_INPUT before anything else
        if await self.answerable():
            found = self.memory.model(model_id)
            if found is None:
                self.answered()
                raise NotFound(f"no model with id {model_id}")
            if not isinstance(found, Unknown):
                self.answered()
                return self.registry.documents.model(found)
            self.unknown()
        return await self.registry.get(model_id)

    async def find(self, where: ModelFilter, page: PageRequest) -> Page[MLModel]:
        if await self.answerable():
            found = self.memory.page(models_query(where), page)
            if not isinstance(found, Unknown):
                self.answered()
                documents, has_next, has_previous = found
                return Page(self.registry.documents.models(documents), has_next, has_previous)
            self.unknown()
        return await self.registry.find(where, page)

    async def get_many(self, model_ids: list[str]) -> list[MLModel | None]:
        if await self.answerable():
            found = [self.memory.model(model_id) for model_id in model_ids]
            known = [each for each in found if not isinstance(each, Unknown)]
            if len(known) == len(found):
                self.answered()
                return [
                    None if each is None else self.registry.documents.model(each) for each in known
                ]
            self.unknown()
        return await self.registry.get_many(model_ids)

    async def children_of(self, model_ids: list[str]) -> list[list[MLModel]]:
        if await self.answerable():
            found = self.memory.children(model_ids)
            if not isinstance(found, Unknown):
                self.answered()
                return [self.registry.documents.models(each) for each in found]
            self.unknown()
        return await self.registry.children_of(model_ids)


class AliasReads(FromMemory):
    """Aliases are held whole: memory answers every alias read it may answer."""

    def __init__(self, memory: ReadModel, aliases: MongoAliasRegistry) -> None:
        super().__init__(memory)
        self.aliases = aliases

    async def answerable(self) -> bool:
        answerable = await super().answerable()
        if answerable:
            self.answered()
        return answerable

    async def resolve(self, alias: str) -> str:
        if not await self.answerable():
            return await self.aliases.resolve(alias)
        document = self.memory.alias(alias)
        if document is None:
            raise NotFound(f"no alias {alias!r} (modelAliases lists them)", alias=alias)
        return str(document["model_id"])

    async def all(self, limit: int) -> list[ModelAlias]:
        if not await self.answerable():
            return await self.aliases.all(limit)
        return [alias_from_document(dict(each)) for each in self.memory.aliases(limit)]

    async def of_models(self, model_ids: list[str]) -> list[list[str]]:
        if not await self.answerable():
            return await self.aliases.of_models(model_ids)
        return self.memory.aliases_of(model_ids)
