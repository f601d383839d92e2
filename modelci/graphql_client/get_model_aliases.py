from datetime import datetime

from pydantic import Field

from .base_model import BaseModel


class GetModelAliases(BaseModel):
    model_aliases: list["GetModelAliasesModelAliases"] = Field(alias="modelAliases")


class GetModelAliasesModelAliases(BaseModel):
    alias: str
    model_id: str = Field(alias="modelId")
    update_time: datetime = Field(alias="updateTime")


GetModelAliases.model_rebuild()
