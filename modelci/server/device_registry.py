"""The devices workers report, in MongoDB (``schema.context.DeviceRegistry``).

A worker reports its devices when it starts; profiling jobs may only ask for devices
some worker has reported. One document per (host, device id), replaced on each report.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from modelci.core.domain import Device

from .storage import to_bson

# Devices one token's workers may have on record: a fleet of GPU hosts fits, and a token
# that reports more only replaces its own oldest, never another token's.
MAX_DEVICES_PER_TOKEN = 256


class MongoDeviceRegistry:
    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self.collection = collection

    async def report(self, devices: list[Device], reporter: str | None) -> None:
        if not devices:
            return
        await self.collection.bulk_write(
            [
                UpdateOne(
                    {"host": device.host, "device_id": device.device_id},
                    {"$set": {**to_bson(device.model_dump()), "reported_by": reporter}},
                    upsert=True,
                )
                for device in devices
            ]
        )
        mine = {"reported_by": reporter}
        over = await self.collection.count_documents(mine) - MAX_DEVICES_PER_TOKEN
        if over > 0:
            oldest = self.collection.find(mine, {"_id": 1}).sort("last_seen", ASCENDING)
            stale = [document["_id"] for document in await oldest.limit(over).to_list()]
            await self.collection.delete_many({"_id": {"$in": stale}})

    async def all(self) -> list[Device]:
        """Every device reported, ordered by host and then device id."""
        documents = (
            await self.collection.find({}, {"_id": 0, "reported_by": 0})
            .sort([("host", ASCENDING), ("device_id", ASCENDING)])
            .to_list()
        )
        return [Device.model_validate(document) for document in documents]
