from pydantic import Field

from .base_model import BaseModel
from .fragments import MLModel


class DeleteModelTag(BaseModel):
    delete_model_tag: "DeleteModelTagDeleteModelTag" = Field(alias="deleteModelTag")


DeleteModelTagDeleteModelTag = MLModel
DeleteModelTag.model_rebuild()
