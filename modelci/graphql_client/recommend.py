from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import Engine, Framework
from .fragments import RecommendationOption


class Recommend(BaseModel):
    recommend: "RecommendRecommend"


class RecommendRecommend(BaseModel):
    options: list["RecommendRecommendOptions"]
    rejected: list["RecommendRecommendRejected"]
    closest: Optional["RecommendRecommendClosest"]
    not_profiled: list["RecommendRecommendNotProfiled"] = Field(alias="notProfiled")
    options_found: int = Field(alias="optionsFound")
    rejected_found: int = Field(alias="rejectedFound")
    not_profiled_found: int = Field(alias="notProfiledFound")
    candidates: int
    truncated: bool


RecommendRecommendOptions = RecommendationOption
RecommendRecommendRejected = RecommendationOption
RecommendRecommendClosest = RecommendationOption


class RecommendRecommendNotProfiled(BaseModel):
    id: str
    architecture: str
    framework: Framework
    engine: Engine
    version: int
    parent_model_id: Optional[str] = Field(alias="parentModelId")


Recommend.model_rebuild()
RecommendRecommend.model_rebuild()
