from pydantic import Field

from .base_model import BaseModel
from .fragments import MLModel


class DeleteModel(BaseModel):
    delete_model: "DeleteModelDeleteModel" = Field(alias="deleteModel")


DeleteModelDeleteModel = MLModel
DeleteModel.model_rebuild()
