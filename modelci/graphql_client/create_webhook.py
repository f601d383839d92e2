from pydantic import Field

from .base_model import BaseModel
from .fragments import Webhook


class CreateWebhook(BaseModel):
    create_webhook: "CreateWebhookCreateWebhook" = Field(alias="createWebhook")


class CreateWebhookCreateWebhook(BaseModel):
    secret: str
    webhook: "CreateWebhookCreateWebhookWebhook"


CreateWebhookCreateWebhookWebhook = Webhook
CreateWebhook.model_rebuild()
CreateWebhookCreateWebhook.model_rebuild()
