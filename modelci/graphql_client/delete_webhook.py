from pydantic import Field

from .base_model import BaseModel
from .fragments import Webhook


class DeleteWebhook(BaseModel):
    delete_webhook: "DeleteWebhookDeleteWebhook" = Field(alias="deleteWebhook")


DeleteWebhookDeleteWebhook = Webhook
DeleteWebhook.model_rebuild()
