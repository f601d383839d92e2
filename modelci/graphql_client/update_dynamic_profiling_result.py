from pydantic import Field

from .base_model import BaseModel
from .fragments import MLModel


class UpdateDynamicProfilingResult(BaseModel):
    update_dynamic_profiling_result: "UpdateDynamicProfilingResultUpdateDynamicProfilingResult" = Field(
        alias="updateDynamicProfilingResult"
    )


UpdateDynamicProfilingResultUpdateDynamicProfilingResult = MLModel
UpdateDynamicProfilingResult.model_rebuild()
