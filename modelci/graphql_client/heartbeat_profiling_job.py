from pydantic import Field

from .base_model import BaseModel
from .enums import JobStatus


class HeartbeatProfilingJob(BaseModel):
    heartbeat_profiling_job: "HeartbeatProfilingJobHeartbeatProfilingJob" = Field(
        alias="heartbeatProfilingJob"
    )


class HeartbeatProfilingJobHeartbeatProfilingJob(BaseModel):
    status: JobStatus


HeartbeatProfilingJob.model_rebuild()
