from pydantic import Field

from .base_model import BaseModel
from .fragments import MLModel


class DeleteDynamicProfilingResult(BaseModel):
    delete_dynamic_profiling_result: "DeleteDynamicProfilingResultDeleteDynamicProfilingResult" = Field(
        alias="deleteDynamicProfilingResult"
    )


DeleteDynamicProfilingResultDeleteDynamicProfilingResult = MLModel
DeleteDynamicProfilingResult.model_rebuild()
