from pydantic import Field

from .base_model import BaseModel


class RegisterConvertedModel(BaseModel):
    register_converted_model: "RegisterConvertedModelRegisterConvertedModel" = Field(
        alias="registerConvertedModel"
    )


class RegisterConvertedModelRegisterConvertedModel(BaseModel):
    id: str


RegisterConvertedModel.model_rebuild()
