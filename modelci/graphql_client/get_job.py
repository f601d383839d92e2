from pydantic import Field

from .base_model import BaseModel
from .fragments import ProfilingJob


class GetJob(BaseModel):
    profiling_job: "GetJobProfilingJob" = Field(alias="profilingJob")


GetJobProfilingJob = ProfilingJob
GetJob.model_rebuild()
