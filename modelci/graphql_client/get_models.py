from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import MLModel


class GetModels(BaseModel):
    models: "GetModelsModels"


class GetModelsModels(BaseModel):
    nodes: list["GetModelsModelsNodes"]
    page_info: "GetModelsModelsPageInfo" = Field(alias="pageInfo")


GetModelsModelsNodes = MLModel


class GetModelsModelsPageInfo(BaseModel):
    has_next_page: bool = Field(alias="hasNextPage")
    end_cursor: Optional[str] = Field(alias="endCursor")


GetModels.model_rebuild()
GetModelsModels.model_rebuild()
