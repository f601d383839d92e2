from pydantic import Field

from .base_model import BaseModel
from .fragments import ProfilingJob


class ConvertModel(BaseModel):
    convert_model: "ConvertModelConvertModel" = Field(alias="convertModel")


ConvertModelConvertModel = ProfilingJob
ConvertModel.model_rebuild()
