from datetime import datetime

from pydantic import Field

from .base_model import BaseModel


class SetModelAlias(BaseModel):
    set_model_alias: "SetModelAliasSetModelAlias" = Field(alias="setModelAlias")


class SetModelAliasSetModelAlias(BaseModel):
    alias: str
    model_id: str = Field(alias="modelId")
    update_time: datetime = Field(alias="updateTime")


SetModelAlias.model_rebuild()
