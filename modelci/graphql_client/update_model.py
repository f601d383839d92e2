from pydantic import Field

from .base_model import BaseModel
from .fragments import MLModel


class UpdateModel(BaseModel):
    update_model: "UpdateModelUpdateModel" = Field(alias="updateModel")


UpdateModelUpdateModel = MLModel
UpdateModel.model_rebuild()
