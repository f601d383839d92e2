from pydantic import Field

from .base_model import BaseModel
from .fragments import MLModel


class SetModelTag(BaseModel):
    set_model_tag: "SetModelTagSetModelTag" = Field(alias="setModelTag")


SetModelTagSetModelTag = MLModel
SetModelTag.model_rebuild()
