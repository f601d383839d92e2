from pydantic import Field

from .base_model import BaseModel


class ReportDynamicProfilingResult(BaseModel):
    update_dynamic_profiling_result: "ReportDynamicProfilingResultUpdateDynamicProfilingResult" = Field(
        alias="updateDynamicProfilingResult"
    )


class ReportDynamicProfilingResultUpdateDynamicProfilingResult(BaseModel):
    id: str


ReportDynamicProfilingResult.model_rebuild()
