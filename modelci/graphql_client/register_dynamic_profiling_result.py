from pydantic import Field

from .base_model import BaseModel
from .fragments import MLModel


class RegisterDynamicProfilingResult(BaseModel):
    register_dynamic_profiling_result: "RegisterDynamicProfilingResultRegisterDynamicProfilingResult" = Field(
        alias="registerDynamicProfilingResult"
    )


RegisterDynamicProfilingResultRegisterDynamicProfilingResult = MLModel
RegisterDynamicProfilingResult.model_rebuild()
