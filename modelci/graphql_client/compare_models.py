from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import DynamicProfileResult, MLModel


class CompareModels(BaseModel):
    compare_models: "CompareModelsCompareModels" = Field(alias="compareModels")


class CompareModelsCompareModels(BaseModel):
    models: list["CompareModelsCompareModelsModels"]
    rows: list["CompareModelsCompareModelsRows"]


CompareModelsCompareModelsModels = MLModel


class CompareModelsCompareModelsRows(BaseModel):
    device_id: str = Field(alias="deviceId")
    device_name: str = Field(alias="deviceName")
    batch: int
    results: list[Optional["CompareModelsCompareModelsRowsResults"]]


CompareModelsCompareModelsRowsResults = DynamicProfileResult
CompareModels.model_rebuild()
CompareModelsCompareModels.model_rebuild()
CompareModelsCompareModelsRows.model_rebuild()
