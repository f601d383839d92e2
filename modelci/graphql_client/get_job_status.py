from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import JobStatus


class GetJobStatus(BaseModel):
    profiling_job: "GetJobStatusProfilingJob" = Field(alias="profilingJob")


class GetJobStatusProfilingJob(BaseModel):
    status: JobStatus
    worker: Optional[str]


GetJobStatus.model_rebuild()
