"""The model registry over MongoDB (``core.ports.ModelRegistry``).

A model's weight comes in through the ``WeightIntake`` (staged, inspected, committed
before the document that references it is written) and goes when the last model that
references it is deleted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pydantic.alias_generators import to_camel
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from modelci.core.domain import (
    INHERITED_FIELDS,
    MAX_TAGS,
    MAX_VERSION,
    ConversionCheck,
    DynamicProfileResult,
    MLModel,
    ModelFields,
    ModelFilter,
    ModelKey,
    NameValue,
    StaticProfileResult,
    utcnow,
)
from modelci.core.errors import Conflict, NotFound
from modelci.core.ports import CheckedWeight, Page, PageRequest, UploadedWeight
from modelci.core.registry_events import EventType, RegistryEvent, new_event
from modelci.core.usecases import describe_key, key_taken

from .intake import StagedCheckedWeight, WeightIntake
from .listing import Listing
from .model_query import models_query
from .outbox import announce_insert, delete_announced, with_event
from .storage import (
    DYNAMIC_RESULTS,
    MODEL_KEY_FIELDS,
    VERSIONS,
    ModelDocuments,
    model_from_document,
    object_id,
    to_bson,
)

# Dynamic results one model may hold: a doubling sweep (13 batch sizes) on a dozen devices
# fits, and an append never rewrites a document of thousands of results.
MAX_DYNAMIC_RESULTS = 256


def dynamic_key(ip: str, device_id: str, batch: int | None) -> dict[str, Any]:
    key: dict[str, Any] = {"ip": ip, "device_id": device_id}
    if batch is not None:
        key["batch"] = batch
    return key


def registered(document: Mapping[str, Any], parent_model_id: str | None) -> RegistryEvent:
    return new_event(
        EventType.MODEL_REGISTERED,
        None,
        document["architecture"],
        document["version"],
        engine=document["engine"],
        parentModelId=parent_model_id,
    )


def updated_event(
    model_id: str, fields: ModelFields, changed: set[str], weight_replaced: bool
) -> RegistryEvent:
    names = sorted(to_camel(field) for field in changed)
    return new_event(
        EventType.MODEL_UPDATED,
        model_id,
        fields.architecture,
        fields.version,
        fields=names,
        weightReplaced=weight_replaced,
    )


def deleted_event(document: Mapping[str, Any]) -> RegistryEvent:
    return new_event(
        EventType.MODEL_DELETED,
        str(document["_id"]),
        document.get("architecture"),
        document.get("version"),
        parentModelId=document.get("parent_model_id"),
    )


def dynamic_added(model_id: str, result: DynamicProfileResult, replaced: bool) -> RegistryEvent:
    return new_event(
        EventType.PROFILE_ADDED,
        model_id,
        kind="dynamic",
        deviceId=result.device_id,
        batch=result.batch,
        replaced=replaced,
    )


def tag_set(model_id: str, tag: NameValue) -> RegistryEvent:
    return new_event(EventType.TAG_SET, model_id, key=tag.name, value=tag.value)


def version_line(fields: ModelFields) -> dict[str, Any]:
    """What versions are numbered within: a model's architecture, task and dataset."""
    return {
        "architecture": fields.architecture,
        "task": fields.task.value,
        "dataset": fields.dataset,
    }


class MongoModelRegistry:
    def __init__(
        self,
        models: AsyncCollection[dict[str, Any]],
        intake: WeightIntake,
        listing: Listing,
        kept_models_bytes: int = 0,
    ) -> None:
        self.documents = ModelDocuments(models, kept_models_bytes)
        self.versions = models.database[VERSIONS]
        self.models = self.documents.collection  # reads undecoded: see ModelDocuments
        self.intake = intake
        self.listing = listing

    # Reading

    async def get(self, model_id: str) -> MLModel:
        document = await self.models.find_one({"_id": object_id(model_id)})
        if document is None:
            raise NotFound(f"no model with id {model_id}")
        return self.documents.model(document)

    async def find(self, where: ModelFilter, page: PageRequest) -> Page[MLModel]:
        query = models_query(where)
        documents, has_next, has_previous = await self.listing.page(self.models, query, page)
        return Page(self.documents.models(documents), has_next, has_previous)

    # Registering, updating, deleting

    @asynccontextmanager
    async def checked(
        self, weight: UploadedWeight, fields: ModelFields, owner: str | None = None
    ) -> AsyncIterator[CheckedWeight]:
        async with self.intake.checked(weight, fields, owner) as checked:
            yield checked

    async def holder_of(self, key: ModelKey) -> str | None:
        holder = await self.models.find_one(to_bson(key.model_dump()), {"_id": 1})
        return None if holder is None else str(holder["_id"])

    async def insert(
        self,
        weight: CheckedWeight,
        parent_model_id: str | None = None,
        conversion: ConversionCheck | None = None,
        created_by: str | None = None,
    ) -> MLModel:
        staged = self.staged(weight)
        if staged.fields.version is None:  # numbered now, once every check has passed
            version = await self.next_version(staged.fields)
            staged.fields = staged.fields.model_copy(update={"version": version})
        now = utcnow()
        document = to_bson(staged.fields.model_dump())
        document.update(
            parent_model_id=parent_model_id,
            conversion=to_bson(conversion.model_dump()) if conversion else None,
            weight=to_bson(staged.description.model_dump()),
            profile_result={"static_result": None, "dynamic_results": []},
            created_by=created_by,
            create_time=now,
            update_time=now,
        )
        announce_insert(document, registered(document, parent_model_id))
        try:
            async with self.intake.committed(staged):
                result = await self.models.insert_one(document)
        except DuplicateKeyError:
            raise key_taken(staged.fields) from None
        document["_id"] = result.inserted_id
        if parent_model_id is not None and (await self.get_many([parent_model_id]))[0] is None:
            # Its source was deleted while it was stored. Either this check sees the source
            # gone, or the source's delete began after the insert and its last sweep
            # (``delete``) takes the variant: no variant outlives its source.
            await self.delete(str(result.inserted_id), cascade=True)
            raise NotFound(
                f"model {parent_model_id} was deleted while its variant was registered; "
                "the variant was not kept"
            )
        return model_from_document(document)

    async def register(
        self,
        fields: ModelFields,
        weight: UploadedWeight,
        parent_model_id: str | None = None,
        owner: str | None = None,
    ) -> MLModel:
        """Both phases at once, with none of the use cases' rules between them: a model
        placed as it is (tests and tools)."""
        async with self.checked(weight, fields, owner) as checked:
            return await self.insert(checked, parent_model_id)

    @staticmethod
    def staged(weight: CheckedWeight) -> StagedCheckedWeight:
        if not isinstance(weight, StagedCheckedWeight):
            raise TypeError(f"a weight to store must come from this registry's intake: {weight!r}")
        return weight

    async def update(
        self,
        model_id: str,
        fields: ModelFields,
        changed: set[str],
        weight: CheckedWeight | None = None,
    ) -> MLModel:
        oid = object_id(model_id)
        update = {field: to_bson(getattr(fields, field)) for field in changed}
        update["update_time"] = utcnow()
        event = updated_event(model_id, fields, changed, weight_replaced=weight is not None)
        if weight is None:
            return await self.apply_update(oid, update, fields, event)
        staged = self.staged(weight)
        current = await self.get(model_id)
        update["weight"] = to_bson(staged.description.model_dump())
        async with self.intake.committed(staged):
            updated = await self.apply_update(oid, update, fields, event)
            await self.intake.drop_if_unused(current.weight.sha256)
        return updated

    async def apply_update(
        self, oid: Any, update: dict[str, Any], merged: ModelFields, event: RegistryEvent
    ) -> MLModel:
        try:
            document = await self.models.find_one_and_update(
                {"_id": oid},
                with_event({"$set": update}, event),
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            raise Conflict(
                f"another model already has the key {describe_key(merged)}",
                key=list(MODEL_KEY_FIELDS),
            ) from None
        if document is None:
            raise NotFound(f"no model with id {oid}")
        return self.documents.model(document)

    async def delete(self, model_id: str, cascade: bool) -> list[MLModel]:
        root = await self.get(model_id)
        doomed = [root]
        frontier = [root.id]
        while frontier:  # variants, and variants of variants
            children = await self.models.find({"parent_model_id": {"$in": frontier}}).to_list()
            found = self.documents.models(children)
            if found and not cascade:
                raise Conflict(
                    f"model {model_id} has {len(found)} converted variant(s) "
                    f"({', '.join(child.id for child in found)}); delete them too with "
                    f'deleteModel(id: "{model_id}", cascade: true) in the API or '
                    f"`modelci rm {model_id} --cascade` on the command line",
                )
            doomed += found
            frontier = [child.id for child in found]
        deleted = await self.delete_each(reversed(doomed))  # variants first: no orphan
        if not any(model.id == root.id for model in deleted):
            raise NotFound(f"no model with id {model_id}")
        # A variant registered while these were deleted is taken too (see ``register``).
        gone = [model.id for model in deleted]
        while gone:
            late = await self.models.find({"parent_model_id": {"$in": gone}}).to_list()
            taken = await self.delete_each(self.documents.models(late))
            deleted[:0] = taken[::-1]
            gone = [model.id for model in taken]
        return deleted[::-1]

    async def delete_each(self, models: Iterable[MLModel]) -> list[MLModel]:
        """Delete the models one by one, each with its claim on its weight; those deleted."""
        deleted = []
        for model in models:
            document = await delete_announced(
                self.models, {"_id": object_id(model.id)}, deleted_event
            )
            if document is not None:
                deleted.append(self.documents.model(document))
                await self.intake.release(model.weight.sha256)
        return deleted

    async def get_many(self, model_ids: list[str]) -> list[MLModel | None]:
        """Models in the order asked (None where missing); for the per-request DataLoader."""
        documents = await self.models.find(
            {"_id": {"$in": [object_id(model_id) for model_id in model_ids]}}
        ).to_list()
        by_id = {model.id: model for model in self.documents.models(documents)}
        return [by_id.get(model_id) for model_id in model_ids]

    async def children_of(self, model_ids: list[str]) -> list[list[MLModel]]:
        """Each model's converted variants, oldest first; for the per-request DataLoader."""
        documents = (
            await self.models.find({"parent_model_id": {"$in": model_ids}}).sort("_id", 1).to_list()
        )
        children: dict[str, list[MLModel]] = {model_id: [] for model_id in model_ids}
        for child in self.documents.models(documents):
            children[child.parent_model_id or ""].append(child)
        return [children[model_id] for model_id in model_ids]

    # Profiling results

    async def set_static_result(self, model_id: str, result: StaticProfileResult) -> MLModel:
        return await self.change_one(
            model_id,
            {},
            {"$set": {"profile_result.static_result": result.model_dump()}},
            event=new_event(EventType.PROFILE_ADDED, model_id, kind="static"),
        )

    async def add_dynamic_result(self, model_id: str, result: DynamicProfileResult) -> MLModel:
        key = dynamic_key(result.ip, result.device_id, result.batch)
        # The array has no element at the last place allowed: it is not full.
        room = {f"{DYNAMIC_RESULTS}.{MAX_DYNAMIC_RESULTS - 1}": {"$exists": False}}
        try:
            return await self.change_one(
                model_id,
                {DYNAMIC_RESULTS: {"$not": {"$elemMatch": key}}, **room},
                {"$push": {DYNAMIC_RESULTS: result.model_dump()}},
                event=dynamic_added(model_id, result, replaced=False),
            )
        except NotFound:
            model = await self.get(model_id)
            if len(model.profile_result.dynamic_results) >= MAX_DYNAMIC_RESULTS:
                raise Conflict(
                    f"model {model_id} holds {MAX_DYNAMIC_RESULTS} dynamic results, the most one "
                    "model may hold; delete some (deleteDynamicProfilingResult) or replace one "
                    "(updateDynamicProfilingResult)"
                ) from None
            raise Conflict(
                f"model {model_id} already has a dynamic result for ip {result.ip}, "
                f"device {result.device_id}, batch {result.batch}; use "
                "updateDynamicProfilingResult to replace it"
            ) from None

    async def replace_dynamic_result(
        self, model_id: str, result: DynamicProfileResult, force_insert: bool
    ) -> MLModel:
        key = dynamic_key(result.ip, result.device_id, result.batch)
        try:
            return await self.change_one(
                model_id,
                {DYNAMIC_RESULTS: {"$elemMatch": key}},
                {"$set": {f"{DYNAMIC_RESULTS}.$[result]": result.model_dump()}},
                array_filters=[{f"result.{field}": value for field, value in key.items()}],
                event=dynamic_added(model_id, result, replaced=True),
            )
        except NotFound:
            await self.get(model_id)
            if not force_insert:
                raise NotFound(
                    f"model {model_id} has no dynamic result for ip {result.ip}, "
                    f"device {result.device_id}, batch {result.batch}; pass forceInsert: true "
                    "to insert it"
                ) from None
        try:
            return await self.add_dynamic_result(model_id, result)
        except Conflict as refused:
            # Inserted by someone else meanwhile: replace theirs, as asked. Not there after
            # all: the model is full, which is what to say.
            try:
                return await self.replace_dynamic_result(model_id, result, force_insert=False)
            except NotFound:
                raise refused from None

    async def delete_dynamic_results(
        self, model_id: str, ip: str, device_id: str, batch: int | None
    ) -> MLModel:
        key = dynamic_key(ip, device_id, batch)
        try:
            return await self.change_one(
                model_id, {DYNAMIC_RESULTS: {"$elemMatch": key}}, {"$pull": {DYNAMIC_RESULTS: key}}
            )
        except NotFound:
            await self.get(model_id)
            which = f", batch {batch}" if batch is not None else ""
            raise NotFound(
                f"model {model_id} has no dynamic result for ip {ip}, device {device_id}{which}"
            ) from None

    # Free metadata

    async def set_tag(self, model_id: str, tag: NameValue) -> MLModel:
        """The tag written in one conditional write: its value replaced where the model has
        a tag of that name, else the tag added while the model has fewer than ``MAX_TAGS``;
        CONFLICT when it is full."""
        for _ in range(8):  # the tag removed or added between the two writes: again
            try:
                return await self.change_one(
                    model_id,
                    {"tags.name": tag.name},
                    {"$set": {"tags.$[tag].value": tag.value}},
                    array_filters=[{"tag.name": tag.name}],
                    event=tag_set(model_id, tag),
                )
            except NotFound:
                pass
            try:
                return await self.change_one(
                    model_id,
                    {"tags.name": {"$ne": tag.name}, f"tags.{MAX_TAGS - 1}": {"$exists": False}},
                    {"$push": {"tags": tag.model_dump()}},
                    event=tag_set(model_id, tag),
                )
            except NotFound:
                pass
            names = [each.name for each in (await self.get(model_id)).tags]  # NOT_FOUND
            if tag.name not in names and len(names) >= MAX_TAGS:
                raise Conflict(
                    f"model {model_id} has {len(names)} tags, the most one model may have; "
                    "remove one (deleteModelTag) first",
                    tags=names,
                )
        raise Conflict(f"model {model_id}'s tag {tag.name} kept changing while it was set")

    async def delete_tag(self, model_id: str, name: str) -> MLModel:
        try:
            return await self.change_one(
                model_id,
                {"tags.name": name},
                {"$pull": {"tags": {"name": name}}},
                event=new_event(EventType.TAG_DELETED, model_id, key=name),
            )
        except NotFound:
            await self.get(model_id)
            raise NotFound(f"model {model_id} has no tag {name!r}") from None

    async def pass_on_to_variants(self, source_id: str) -> None:
        """The source's ``INHERITED_FIELDS`` written onto its variants (and theirs), again
        until the source, read after the write, still has what was written: of two
        updates of the source at once, its variants end with the later one's values."""
        written: dict[str, Any] | None = None
        while True:
            try:
                source = await self.get(source_id)
            except NotFound:
                return  # deleted meanwhile, with its variants
            values = {field: to_bson(getattr(source, field)) for field in INHERITED_FIELDS}
            if values == written:
                return
            variants = await self.descendants_of(source_id)
            if not variants:
                return
            await self.models.update_many(
                {"_id": {"$in": variants}}, {"$set": values | {"update_time": utcnow()}}
            )
            written = values

    async def descendants_of(self, model_id: str) -> list[Any]:
        """The ids (ObjectIds) of the model's variants, and of theirs."""
        found: list[Any] = []
        frontier = [model_id]
        while frontier:
            children = await self.models.find(
                {"parent_model_id": {"$in": frontier}}, {"_id": 1}
            ).to_list()
            ids = [child["_id"] for child in children]
            found += ids
            frontier = [str(each) for each in ids]
        return found

    # Versions

    async def next_version(self, fields: ModelFields) -> int:
        """A new version of the fields' line (architecture, task, dataset): above every
        version the hub gave or holds, taken atomically (see ``storage``); a number
        another model registered by hand meanwhile is passed over."""
        line = version_line(fields)
        while True:
            version = await self.take_version(line)
            if await self.models.find_one(line | {"version": version}, {"_id": 1}) is None:
                return version

    async def take_version(self, line: dict[str, Any]) -> int:
        floor = await self.highest_version(line)
        try:
            return await self.count_up(line, floor)
        except DuplicateKeyError:  # a line's first number taken twice at once: one upsert stood
            return await self.count_up(line, floor)

    async def count_up(self, line: dict[str, Any], floor: int) -> int:
        """The line's counter raised to ``floor`` (a version registered by hand, or
        imported) if it is below, then one up: the number taken."""
        await self.versions.update_one({"_id": line}, {"$max": {"last": floor}}, upsert=True)
        counter = await self.versions.find_one_and_update(
            {"_id": line}, {"$inc": {"last": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert counter is not None  # an upsert returns the document it wrote
        version = int(counter["last"])
        if version > MAX_VERSION:
            raise Conflict(
                f"{line['architecture']} ({line['task']}, {line['dataset']}) has used every "
                f"version number up to {MAX_VERSION}: give this model another architecture "
                "or dataset"
            )
        return version

    async def version_after(self, fields: ModelFields) -> int:
        """The version the next registration of the fields' line would get (not taken)."""
        line = version_line(fields)
        counter = await self.versions.find_one({"_id": line})
        given = int(counter["last"]) if counter else 0
        return max(given, await self.highest_version(line)) + 1

    async def highest_version(self, line: dict[str, Any]) -> int:
        highest = (
            await self.models.find(line, {"version": 1}).sort("version", -1).limit(1).to_list()
        )
        return int(highest[0]["version"]) if highest else 0

    async def change_one(
        self,
        model_id: str,
        condition: dict[str, Any],
        change: dict[str, Any],
        array_filters: list[dict[str, Any]] | None = None,
        event: RegistryEvent | None = None,
    ) -> MLModel:
        """Apply ``change`` to the model if it matches ``condition``, with ``event`` in
        the same write (``outbox``); NOT_FOUND otherwise."""
        change.setdefault("$set", {})["update_time"] = utcnow()
        if event is not None:
            with_event(change, event)
        document = await self.models.find_one_and_update(
            {"_id": object_id(model_id), **condition},
            change,
            array_filters=array_filters,
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            raise NotFound(f"no model with id {model_id}")
        return self.documents.model(document)
