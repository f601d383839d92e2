from datetime import datetime
from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import Scope


class RevokeApiToken(BaseModel):
    revoke_api_token: list["RevokeApiTokenRevokeApiToken"] = Field(
        alias="revokeApiToken"
    )


class RevokeApiTokenRevokeApiToken(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    create_time: datetime = Field(alias="createTime")
    last_used: Optional[datetime] = Field(alias="lastUsed")
    revoked: bool


RevokeApiToken.model_rebuild()
