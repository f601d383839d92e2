from pydantic import Field

from .base_model import BaseModel
from .fragments import Webhook


class UpdateWebhook(BaseModel):
    update_webhook: "UpdateWebhookUpdateWebhook" = Field(alias="updateWebhook")


UpdateWebhookUpdateWebhook = Webhook
UpdateWebhook.model_rebuild()
