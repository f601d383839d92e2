from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import Engine, ModelStatus, WeightFormat


class GetLineage(BaseModel):
    model: "GetLineageModel"


class GetLineageModel(BaseModel):
    id: str
    parent_model_id: Optional[str] = Field(alias="parentModelId")
    children: list["GetLineageModelChildren"]


class GetLineageModelChildren(BaseModel):
    id: str
    engine: Engine
    model_status: list[ModelStatus] = Field(alias="modelStatus")
    weight: "GetLineageModelChildrenWeight"


class GetLineageModelChildrenWeight(BaseModel):
    format: Optional[WeightFormat]


GetLineage.model_rebuild()
GetLineageModel.model_rebuild()
GetLineageModelChildren.model_rebuild()
