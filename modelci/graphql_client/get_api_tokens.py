from datetime import datetime
from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import Scope


class GetApiTokens(BaseModel):
    api_tokens: list["GetApiTokensApiTokens"] = Field(alias="apiTokens")


class GetApiTokensApiTokens(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    create_time: datetime = Field(alias="createTime")
    last_used: Optional[datetime] = Field(alias="lastUsed")
    revoked: bool


GetApiTokens.model_rebuild()
