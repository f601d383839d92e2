from datetime import datetime
from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import Scope


class CreateApiToken(BaseModel):
    create_api_token: "CreateApiTokenCreateApiToken" = Field(alias="createApiToken")


class CreateApiTokenCreateApiToken(BaseModel):
    token: str
    api_token: "CreateApiTokenCreateApiTokenApiToken" = Field(alias="apiToken")


class CreateApiTokenCreateApiTokenApiToken(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    create_time: datetime = Field(alias="createTime")
    last_used: Optional[datetime] = Field(alias="lastUsed")
    revoked: bool


CreateApiToken.model_rebuild()
CreateApiTokenCreateApiToken.model_rebuild()
