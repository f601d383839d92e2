"""What resolvers may reach: the request context and the interfaces behind it.

The server implements these interfaces; resolvers never import the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .domain import DynamicProfileResult, MLModel, ModelFields, ModelFilter, StaticProfileResult


class WeightSource(Protocol):
    """An uploaded weight file, read in chunks (Starlette's ``UploadFile`` is one)."""

    filename: str | None
    content_type: str | None

    async def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class ModelPage:
    models: list[MLModel]
    has_next_page: bool


class ModelRegistry(Protocol):
    """The model service: every operation of the seed, with its errors (see ``errors``)."""

    async def register(
        self,
        fields: ModelFields,
        weight: WeightSource,
        parent_model_id: str | None = None,
    ) -> MLModel: ...

    async def get(self, model_id: str) -> MLModel: ...

    async def find(self, where: ModelFilter, first: int, after: str | None) -> ModelPage: ...

    async def update(
        self, model_id: str, changes: dict[str, Any], weight: WeightSource | None
    ) -> MLModel: ...

    async def delete(self, model_id: str) -> MLModel: ...

    async def set_static_result(self, model_id: str, result: StaticProfileResult) -> MLModel: ...

    async def add_dynamic_result(self, model_id: str, result: DynamicProfileResult) -> MLModel: ...

    async def replace_dynamic_result(
        self, model_id: str, result: DynamicProfileResult, force_insert: bool
    ) -> MLModel: ...

    async def delete_dynamic_results(
        self, model_id: str, ip: str, device_id: str, batch: int | None
    ) -> MLModel: ...


@dataclass
class HubContext:
    """The typed request context every resolver receives as ``info.context``."""

    request: Any
    response: Any
    registry: ModelRegistry
    request_id: str
