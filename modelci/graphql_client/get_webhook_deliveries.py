from pydantic import Field

from .base_model import BaseModel
from .fragments import WebhookDelivery


class GetWebhookDeliveries(BaseModel):
    webhook_deliveries: list["GetWebhookDeliveriesWebhookDeliveries"] = Field(
        alias="webhookDeliveries"
    )


GetWebhookDeliveriesWebhookDeliveries = WebhookDelivery
GetWebhookDeliveries.model_rebuild()
