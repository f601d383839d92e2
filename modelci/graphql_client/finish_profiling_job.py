from pydantic import Field

from .base_model import BaseModel
from .enums import JobStatus


class FinishProfilingJob(BaseModel):
    finish_profiling_job: "FinishProfilingJobFinishProfilingJob" = Field(
        alias="finishProfilingJob"
    )


class FinishProfilingJobFinishProfilingJob(BaseModel):
    status: JobStatus


FinishProfilingJob.model_rebuild()
