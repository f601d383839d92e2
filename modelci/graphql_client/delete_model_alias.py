from datetime import datetime

from pydantic import Field

from .base_model import BaseModel


class DeleteModelAlias(BaseModel):
    delete_model_alias: "DeleteModelAliasDeleteModelAlias" = Field(
        alias="deleteModelAlias"
    )


class DeleteModelAliasDeleteModelAlias(BaseModel):
    alias: str
    model_id: str = Field(alias="modelId")
    update_time: datetime = Field(alias="updateTime")


DeleteModelAlias.model_rebuild()
