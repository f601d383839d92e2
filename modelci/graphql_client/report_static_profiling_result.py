from pydantic import Field

from .base_model import BaseModel


class ReportStaticProfilingResult(BaseModel):
    register_static_profiling_result: "ReportStaticProfilingResultRegisterStaticProfilingResult" = Field(
        alias="registerStaticProfilingResult"
    )


class ReportStaticProfilingResultRegisterStaticProfilingResult(BaseModel):
    id: str


ReportStaticProfilingResult.model_rebuild()
