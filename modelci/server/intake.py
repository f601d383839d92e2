"""A weight's way into the hub, with one owner: staged, inspected, committed, and
whatever was not committed removed again, whichever step fails.

Ordering keeps failures clean: the bytes are staged aside (where they can be
inspected), committed (addressable by their sha256) under the reference lock, and
only then does a model document reference them; a failure after the commit drops the
bytes again unless another model references them. Start-up collects what a crash
left behind (``collect_orphans``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from modelci.core.domain import ModelFields, Weight
from modelci.core.ports import CheckedWeight, UploadedWeight

from .inspection import ModelInspector
from .weights import ByteSource, StagedWeight, WeightStore, display_filename

logger = logging.getLogger("modelci.registry")


@dataclass
class StagedUpload:
    """An uploaded weight already in staging (``core.ports.UploadedWeight``): what the
    ``Upload`` scalar carries once the multipart parser has streamed a file part in."""

    filename: str | None
    content_type: str | None
    staged: StagedWeight


@dataclass
class StagedCheckedWeight(CheckedWeight):
    """A checked weight (``core.ports.CheckedWeight``) with its bytes in staging."""

    staged: StagedWeight


class WeightIntake:
    """Weight bytes in and out of the store, in step with the model documents in
    ``models`` that reference them."""

    def __init__(
        self,
        models: AsyncCollection[dict[str, Any]],
        weights: WeightStore,
        inspector: ModelInspector,
    ) -> None:
        self.models = models
        self.weights = weights
        self.inspector = inspector

    async def staged(self, weight: UploadedWeight) -> StagedUpload:
        """The weight in staging: an upload is there already (streamed in as its request
        arrived); bytes from elsewhere (a ``ByteSource``) are streamed in now."""
        if isinstance(weight, StagedUpload):
            return weight
        filename, content_type = weight.filename, weight.content_type
        if not isinstance(weight, ByteSource):
            raise TypeError(f"a weight to stage must be a StagedUpload or a ByteSource: {weight!r}")
        return StagedUpload(filename, content_type, await self.weights.staging.write(weight))

    @asynccontextmanager
    async def checked(
        self, weight: UploadedWeight, fields: ModelFields, owner: str | None = None
    ) -> AsyncIterator[StagedCheckedWeight]:
        """The weight staged and inspected against ``fields``, for the block to refuse
        (by raising) or to reference within ``committed``; ``owner``'s checks take turns
        with other owners'. When the block ends, the staged bytes are gone: committed, or
        removed."""
        upload = await self.staged(weight)
        try:
            completed, weight_format = await self.inspector.checked(
                fields, upload.staged.path, owner
            )
            yield StagedCheckedWeight(
                staged=upload.staged,
                fields=completed,
                format=weight_format,
                description=Weight(
                    filename=display_filename(upload.filename),
                    size=upload.staged.size,
                    sha256=upload.staged.sha256,
                    content_type=upload.content_type or "application/octet-stream",
                    format=weight_format,
                ),
            )
        finally:
            upload.staged.discard()

    @asynccontextmanager
    async def committed(self, weight: StagedCheckedWeight) -> AsyncIterator[None]:
        """The bytes committed for the block to reference, under the reference lock, and
        dropped again if the block fails (unless another model references them)."""
        sha256 = weight.staged.sha256
        async with self.weights.references.held(sha256):
            await self.weights.commit(weight.staged)
            try:
                yield
            except BaseException:
                await self.drop_if_unused(sha256)
                raise

    async def release(self, sha256: str) -> None:
        """A model referencing ``sha256`` was removed: drop the bytes unless another model
        references them (under the reference lock, so a registration of the same content
        that has just committed them keeps them)."""
        async with self.weights.references.held(sha256):
            await self.drop_if_unused(sha256)

    async def drop_if_unused(self, sha256: str) -> None:
        """Drop the bytes unless a model references them; the caller holds the lock."""
        if await self.models.find_one({"weight.sha256": sha256}, {"_id": 1}) is None:
            await self.weights.delete(sha256)

    async def clear_staging(self) -> None:
        """Remove abandoned uploads: at start-up, before any upload is taken."""
        await self.weights.clear_staging()

    async def collect_orphans(self) -> int:
        """Remove the bytes no model references (a crash between commit and document
        left them). Safe while registrations go on: each removal checks again, under the
        reference lock, that no model has come to reference them. One indexed lookup a
        stored weight, not a ``distinct`` over the models, which the embedded database
        answers by reading every model; a starting hub runs it beside serving."""
        orphans: set[str] = set()
        for sha256 in await self.weights.collectable_hashes():
            if await self.models.find_one({"weight.sha256": sha256}, {"_id": 1}) is None:
                orphans.add(sha256)
                await self.release(sha256)  # unless a registration referenced it meanwhile
        if orphans:
            logger.info("removed %d orphaned weight file(s)", len(orphans))
        return len(orphans)
