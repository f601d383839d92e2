from pydantic import Field

from .base_model import BaseModel
from .fragments import MLModel


class RegisterModel(BaseModel):
    register_model: "RegisterModelRegisterModel" = Field(alias="registerModel")


RegisterModelRegisterModel = MLModel
RegisterModel.model_rebuild()
