from pydantic import Field

from .base_model import BaseModel
from .enums import JobStatus


class ReleaseProfilingJob(BaseModel):
    release_profiling_job: "ReleaseProfilingJobReleaseProfilingJob" = Field(
        alias="releaseProfilingJob"
    )


class ReleaseProfilingJobReleaseProfilingJob(BaseModel):
    status: JobStatus


ReleaseProfilingJob.model_rebuild()
