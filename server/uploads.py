"""GraphQL multipart requests, streamed: file parts go straight into staging, hashed on
the way, while the request body arrives.

The GraphQL multipart request spec sends `operations` and `map` before the files. Each
file part is written once, into the staging folder, and reaches the resolver as a
``StagedUpload``: the registry commits those bytes without copying them again. What
no resolver committed is removed when the request ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from modelci.schema.errors import BadUserInput, PayloadTooLarge

from .weights import StagedWeight, Staging, StagingWriter

MAX_FIELD_BYTES = 1024 * 1024  # `operations` and `map`


@dataclass
class StagedUpload:
    """An uploaded file, already in staging: what the ``Upload`` scalar carries."""

    filename: str | None
    content_type: str | None
    staged: StagedWeight

    async def read(self, size: int = -1) -> bytes:
        raise RuntimeError("a staged upload is committed by path, not read")


@dataclass
class Part:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    field: bytearray | None = None
    writer: StagingWriter | None = None


async def parse_graphql_multipart(
    request: Request, staging: Staging
) -> tuple[dict[str, Any], list[StagedUpload]]:
    """The operations with each file variable set to its StagedUpload, and the uploads."""
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadUserInput("multipart request without a boundary")

    fields: dict[str, bytes] = {}
    uploads: dict[str, StagedUpload] = {}
    events: list[tuple[str, Any]] = []  # the parser's callbacks are sync: act after each chunk
    header: dict[str, bytes] = {"field": b"", "value": b""}
    headers: dict[bytes, bytes] = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        headers[header["field"].lower()] = header["value"]
        header["field"] = header["value"] = b""

    def on_headers_finished() -> None:
        events.append(("begin", dict(headers)))
        headers.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        events.append(("data", memoryview(data)[start:end]))  # no copy: written once, below

    def on_part_end() -> None:
        events.append(("end", None))

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    part = Part()
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            for event, value in events:
                if event == "begin":
                    part = await begin_part(value, staging)
                elif event == "data":
                    await take_data(part, value)
                else:
                    await end_part(part, fields, uploads)
                    part = Part()
            events.clear()
        parser.finalize()
        return operations_with_files(fields, uploads), list(uploads.values())
    except BaseException:
        if part.writer is not None:
            await part.writer.abort()
        for upload in uploads.values():
            upload.staged.path.unlink(missing_ok=True)
        raise


async def begin_part(headers: dict[bytes, bytes], staging: Staging) -> Part:
    _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
    name = disposition.get(b"name", b"").decode(errors="replace")
    if b"filename" in disposition:
        return Part(
            name=name,
            filename=disposition[b"filename"].decode(errors="replace"),
            content_type=headers.get(b"content-type", b"").decode(errors="replace") or None,
            writer=await staging.open_writer(),
        )
    return Part(name=name, field=bytearray())


async def take_data(part: Part, data: memoryview) -> None:
    if part.writer is not None:
        await part.writer.write(data)
    elif part.field is not None:
        part.field += data
        if len(part.field) > MAX_FIELD_BYTES:
            raise PayloadTooLarge(f"multipart field {part.name!r} over {MAX_FIELD_BYTES} bytes")


async def end_part(part: Part, fields: dict[str, bytes], uploads: dict[str, StagedUpload]) -> None:
    if part.writer is not None:
        staged = await part.writer.finish()
        uploads[part.name] = StagedUpload(part.filename, part.content_type, staged)
    elif part.field is not None:
        fields[part.name] = bytes(part.field)


def operations_with_files(
    fields: dict[str, bytes], uploads: dict[str, StagedUpload]
) -> dict[str, Any]:
    try:
        operations = json.loads(fields["operations"])
        file_map = json.loads(fields["map"])
    except (KeyError, ValueError):
        raise BadUserInput(
            "a multipart request needs the JSON fields `operations` and `map` "
            "(GraphQL multipart request spec)"
        ) from None
    if not isinstance(operations, dict) or not isinstance(file_map, dict):
        raise BadUserInput("`operations` and `map` must be JSON objects")
    for key, paths in file_map.items():
        if key not in uploads or not isinstance(paths, list):
            raise BadUserInput(f"map: no file part named {key!r}")
        for path in paths:
            place(operations, str(path), uploads[key])
    return operations


def place(operations: dict[str, Any], path: str, upload: StagedUpload) -> None:
    """Put ``upload`` at a dotted path such as ``variables.weight`` or ``variables.files.0``."""
    *parents, last = path.split(".")
    target: Any = operations
    try:
        for step in parents:
            target = target[int(step)] if isinstance(target, list) else target[step]
        if isinstance(target, list):
            target[int(last)] = upload
        else:
            target[last] = upload
    except (KeyError, IndexError, ValueError, TypeError):
        raise BadUserInput(f"map: {path!r} names no variable in operations") from None
