from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ProfilingJob


class GetJobs(BaseModel):
    profiling_jobs: "GetJobsProfilingJobs" = Field(alias="profilingJobs")


class GetJobsProfilingJobs(BaseModel):
    nodes: list["GetJobsProfilingJobsNodes"]
    page_info: "GetJobsProfilingJobsPageInfo" = Field(alias="pageInfo")


GetJobsProfilingJobsNodes = ProfilingJob


class GetJobsProfilingJobsPageInfo(BaseModel):
    has_next_page: bool = Field(alias="hasNextPage")
    end_cursor: Optional[str] = Field(alias="endCursor")


GetJobs.model_rebuild()
GetJobsProfilingJobs.model_rebuild()
