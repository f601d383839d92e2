from .base_model import BaseModel
from .fragments import (  # noqa: F401
    MLModel,
    MLModelConversion,
    MLModelInputs,
    MLModelMetric,
    MLModelOutputs,
    MLModelParams,
    MLModelProfileResult,
    MLModelSource,
    MLModelTags,
    MLModelWeight,
)


class GetModel(BaseModel):
    model: "GetModelModel"


class GetModelModel(MLModel):
    aliases: list[str]


GetModel.model_rebuild()
