from pydantic import Field

from .base_model import BaseModel
from .fragments import WebhookDelivery


class TestWebhook(BaseModel):
    test_webhook: "TestWebhookTestWebhook" = Field(alias="testWebhook")


TestWebhookTestWebhook = WebhookDelivery
TestWebhook.model_rebuild()
