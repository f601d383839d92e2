from pydantic import Field

from .base_model import BaseModel
from .fragments import ProfilingJob


class ProfileModel(BaseModel):
    profile_model: "ProfileModelProfileModel" = Field(alias="profileModel")


ProfileModelProfileModel = ProfilingJob
ProfileModel.model_rebuild()
