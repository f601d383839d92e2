from .base_model import BaseModel
from .fragments import MLModel


class GetById(BaseModel):
    model: "GetByIdModel"


GetByIdModel = MLModel
GetById.model_rebuild()
