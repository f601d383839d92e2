from pydantic import Field

from .base_model import BaseModel
from .enums import JobStatus


class RecordProfilingSweep(BaseModel):
    record_profiling_sweep: "RecordProfilingSweepRecordProfilingSweep" = Field(
        alias="recordProfilingSweep"
    )


class RecordProfilingSweepRecordProfilingSweep(BaseModel):
    status: JobStatus


RecordProfilingSweep.model_rebuild()
