"""The devices workers report, in MongoDB (``schema.context.DeviceRegistry``).

A worker reports its devices when it starts; profiling jobs may only ask for devices
some worker has reported. One document per (host, device id), replaced on each report.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from modelci.schema.domain import Device

from .storage import to_bson


class MongoDeviceRegistry:
    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self.collection = collection

    async def report(self, devices: list[Device]) -> None:
        if not devices:
            return
        await self.collection.bulk_write(
            [
                UpdateOne(
                    {"host": device.host, "device_id": device.device_id},
                    {"$set": to_bson(device.model_dump())},
                    upsert=True,
                )
                for device in devices
            ]
        )

    async def all(self) -> list[Device]:
        """Every device reported, ordered by host and then device id."""
        documents = (
            await self.collection.find({}, {"_id": 0})
            .sort([("host", ASCENDING), ("device_id", ASCENDING)])
            .to_list()
        )
        return [Device.model_validate(document) for document in documents]
