from pydantic import Field

from .base_model import BaseModel
from .fragments import ProfilingJob


class CancelJob(BaseModel):
    cancel_profiling_job: "CancelJobCancelProfilingJob" = Field(
        alias="cancelProfilingJob"
    )


CancelJobCancelProfilingJob = ProfilingJob
CancelJob.model_rebuild()
