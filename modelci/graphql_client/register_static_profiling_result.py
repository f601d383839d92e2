from pydantic import Field

from .base_model import BaseModel
from .fragments import MLModel


class RegisterStaticProfilingResult(BaseModel):
    register_static_profiling_result: "RegisterStaticProfilingResultRegisterStaticProfilingResult" = Field(
        alias="registerStaticProfilingResult"
    )


RegisterStaticProfilingResultRegisterStaticProfilingResult = MLModel
RegisterStaticProfilingResult.model_rebuild()
