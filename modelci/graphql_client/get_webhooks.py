from .base_model import BaseModel
from .fragments import Webhook


class GetWebhooks(BaseModel):
    webhooks: list["GetWebhooksWebhooks"]


GetWebhooksWebhooks = Webhook
GetWebhooks.model_rebuild()
