from typing import Optional

from .base_model import BaseModel
from .enums import DataType, Engine, ModelInputFormat, WeightFormat


class ModelToProcess(BaseModel):
    model: "ModelToProcessModel"


class ModelToProcessModel(BaseModel):
    id: str
    engine: Engine
    inputs: list["ModelToProcessModelInputs"]
    outputs: list["ModelToProcessModelOutputs"]
    weight: "ModelToProcessModelWeight"


class ModelToProcessModelInputs(BaseModel):
    name: str
    shape: list[int]
    dtype: DataType
    format: ModelInputFormat


class ModelToProcessModelOutputs(BaseModel):
    name: str


class ModelToProcessModelWeight(BaseModel):
    format: Optional[WeightFormat]


ModelToProcess.model_rebuild()
ModelToProcessModel.model_rebuild()
