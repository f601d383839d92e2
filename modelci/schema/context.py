"""What resolvers may reach: the request context, typed.

Changes go through the use cases (``context.model_service``, ``context.job_service``,
built once per process by the server); reads go to the read ports of
``modelci.core.ports`` directly (``ModelReads``, ``AliasReads``: the server answers them
from memory where it can, ``server/reads.py``) and to the other repositories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from modelci.core.domain import MLModel
from modelci.core.identity import Identity
from modelci.core.ports import (
    AliasReads,
    DeviceRegistry,
    JobQueue,
    ModelReads,
    OperationObserver,
    TokenAdmin,
)
from modelci.core.registry_events import EventStream, WebhookService
from modelci.core.usecases import JobService, ModelService


@dataclass
class Loaders:
    """Per-request DataLoaders: one database round trip for a page's lineage."""

    model: DataLoader[str, MLModel | None]
    children: DataLoader[str, list[MLModel]]
    aliases: DataLoader[str, list[str]]

    @classmethod
    def of(cls, registry: ModelReads, aliases: AliasReads) -> Loaders:
        return cls(
            model=DataLoader(load_fn=registry.get_many),
            children=DataLoader(load_fn=registry.children_of),
            aliases=DataLoader(load_fn=aliases.of_models),
        )


@dataclass
class HubContext:
    """The typed request context every resolver receives as ``info.context``."""

    request: Any
    response: Any
    registry: ModelReads
    jobs: JobQueue
    devices: DeviceRegistry
    request_id: str
    loaders: Loaders
    tokens: TokenAdmin
    aliases: AliasReads
    model_service: ModelService
    job_service: JobService
    identity: Identity | None = None
    # The token a WebSocket connection presented: checked again for every operation on
    # it, so that a revoked token stops working on connections it opened before.
    credential: str | None = None
    observer: OperationObserver | None = None
    connection_params: dict[str, Any] | None = None
    # Registry events and webhooks (``modelci.core.registry_events``); None where the hub runs
    # without them (tests of other parts).
    events: EventStream | None = None
    webhooks: WebhookService | None = None

    @property
    def owner(self) -> str | None:
        """Who queues a job: the caller's token name (quotas and fair turns go by it)."""
        return self.identity.name if self.identity else None

    @property
    def claimant(self) -> str | None:
        """Who claims a job, and alone may write for it while it runs: the caller's token
        (by its id: two tokens may share a name), or everyone's name with auth off."""
        if self.identity is None:
            return None
        return self.identity.token_id or self.identity.name


HubInfo = Info[HubContext, None]
