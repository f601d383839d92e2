from datetime import datetime

from pydantic import Field

from .base_model import BaseModel
from .enums import DeviceKind


class GetDevices(BaseModel):
    devices: list["GetDevicesDevices"]


class GetDevicesDevices(BaseModel):
    host: str
    ip: str
    device_id: str = Field(alias="deviceId")
    name: str
    kind: DeviceKind
    total_memory: int = Field(alias="totalMemory")
    worker: str
    last_seen: datetime = Field(alias="lastSeen")


GetDevices.model_rebuild()
