"""The devices workers report, in MongoDB (``schema.context.DeviceRegistry``).

A worker reports its devices when it starts; profiling jobs may only ask for devices
some worker has reported. One document per (host, device id), replaced on each report.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from modelci.schema.domain import Device
from modelci.schema.errors import Conflict

from .storage import to_bson

# Devices across all workers: a hub with dozens of GPU hosts stays far below it.
MAX_DEVICES = 1024


class MongoDeviceRegistry:
    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self.collection = collection

    async def report(self, devices: list[Device]) -> None:
        """Record the devices; CONFLICT, recording nothing, for a device the hub does not
        know yet once it knows ``MAX_DEVICES`` (so no worker token can grow it at will)."""
        if not devices:
            return
        if await self.collection.count_documents({}) >= MAX_DEVICES:
            known = await self.collection.count_documents(
                {"$or": [{"host": each.host, "device_id": each.device_id} for each in devices]}
            )
            if known < len({(each.host, each.device_id) for each in devices}):
                raise Conflict(
                    f"the hub knows {MAX_DEVICES} devices, the most it keeps, and this report "
                    "names new ones; an operator can remove stale devices from its database"
                )
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
