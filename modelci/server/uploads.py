"""GraphQL multipart requests, streamed: file parts go straight into staging, hashed on
the way, while the request body arrives.

The GraphQL multipart request spec sends `operations` and `map` before the files. Each
file part is written once, into the staging folder, and reaches the resolver as a
``StagedUpload`` (``intake.py``): the registry commits those bytes without copying them
again. What no resolver committed is removed when the request ends (``graphql_multipart``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError, VariableNode, Visitor, parse, visit
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from modelci.core.errors import BadUserInput, PayloadTooLarge, TooManyRequests
from modelci.schema.api import MAX_QUERY_TOKENS

from .intake import StagedUpload
from .weights import Staging, StagingWriter

# Bounds on what a multipart request keeps in memory: its text fields (`operations`
# and `map`) together, the headers of each part, and the number of files it stages.
MAX_FIELD_BYTES = 1024 * 1024
MAX_PART_HEADER_BYTES = 16 * 1024
MAX_FILES = 16


@dataclass
class UploadSlots:
    """How many uploads a server process takes at once, in all and from one caller: each
    holds a connection and a staging file for as long as its client takes to send it."""

    total: int
    per_caller: int
    in_flight: Counter[str] = field(default_factory=Counter)

    @asynccontextmanager
    async def slot(self, caller: str) -> AsyncIterator[None]:
        if self.in_flight.total() >= self.total:
            raise TooManyRequests(f"the hub takes {self.total} uploads at once; retry shortly")
        if self.in_flight[caller] >= self.per_caller:
            raise TooManyRequests(
                f"{caller} has {self.per_caller} uploads in flight already; retry when one ends"
            )
        self.in_flight[caller] += 1
        try:
            yield
        finally:
            self.in_flight[caller] -= 1
            if not self.in_flight[caller]:
                del self.in_flight[caller]


@dataclass
class Part:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    field: bytearray | None = None
    writer: StagingWriter | None = None


@asynccontextmanager
async def graphql_multipart(request: Request, staging: Staging) -> AsyncIterator[dict[str, Any]]:
    """The request's operations, each file variable set to its ``StagedUpload``, for the
    block to execute; when it ends, what no resolver committed is removed from staging."""
    uploads: dict[str, StagedUpload] = {}
    try:
        yield await parse_graphql_multipart(request, staging, uploads)
    finally:
        for upload in uploads.values():
            upload.staged.discard()


async def parse_graphql_multipart(
    request: Request, staging: Staging, uploads: dict[str, StagedUpload]
) -> dict[str, Any]:
    """The operations with each file variable set to its StagedUpload; each file part
    staged goes into ``uploads`` as soon as it is complete."""
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadUserInput("multipart request without a boundary")

    fields: dict[str, bytes] = {}
    events: list[tuple[str, Any]] = []  # the parser's callbacks are sync: act after each chunk
    header: dict[str, bytes] = {"field": b"", "value": b""}
    headers: dict[bytes, bytes] = {}

    header_bytes = 0

    def count_header(length: int) -> None:
        nonlocal header_bytes
        header_bytes += length
        if header_bytes > MAX_PART_HEADER_BYTES:
            raise PayloadTooLarge(f"a multipart part's headers over {MAX_PART_HEADER_BYTES} bytes")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        count_header(end - start)
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        count_header(end - start)
        header["value"] += data[start:end]

    def on_header_end() -> None:
        headers[header["field"].lower()] = header["value"]
        header["field"] = header["value"] = b""

    def on_headers_finished() -> None:
        nonlocal header_bytes
        events.append(("begin", dict(headers)))
        headers.clear()
        header_bytes = 0

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
        max_header_size=MAX_PART_HEADER_BYTES,
    )
    part = Part()
    budget = FieldBudget()
    try:
        async for chunk in request.stream():
            write(parser, chunk)
            for event, value in events:
                if event == "begin":
                    part = await begin_part(value, staging, len(uploads))
                elif event == "data":
                    await take_data(part, value, budget)
                else:
                    await end_part(part, fields, uploads)
                    part = Part()
            events.clear()
        parser.finalize()
        return operations_with_files(fields, uploads)
    except BaseException:
        if part.writer is not None:  # a file part cut off mid-way
            await part.writer.abort()
        raise


def write(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except MultipartParseError as error:
        if "header size" in str(error):
            raise PayloadTooLarge(
                f"a multipart part's headers over {MAX_PART_HEADER_BYTES} bytes"
            ) from None
        raise BadUserInput(f"malformed multipart body: {error}") from None


@dataclass
class FieldBudget:
    """What the text fields of one request may still hold, together."""

    left: int = MAX_FIELD_BYTES


async def begin_part(headers: dict[bytes, bytes], staging: Staging, files_so_far: int) -> Part:
    _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
    name = disposition.get(b"name", b"").decode(errors="replace")
    if b"filename" in disposition:
        if files_so_far >= MAX_FILES:
            raise PayloadTooLarge(f"more than {MAX_FILES} files in one request")
        return Part(
            name=name,
            filename=disposition[b"filename"].decode(errors="replace"),
            content_type=headers.get(b"content-type", b"").decode(errors="replace") or None,
            writer=await staging.open_writer(),
        )
    return Part(name=name, field=bytearray())


async def take_data(part: Part, data: memoryview, budget: FieldBudget) -> None:
    if part.writer is not None:
        await part.writer.write(data)
    elif part.field is not None:
        budget.left -= len(data)
        if budget.left < 0:
            raise PayloadTooLarge(
                f"the text fields of a multipart request over {MAX_FIELD_BYTES} bytes together"
            )
        part.field += data


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
    except (KeyError, ValueError, RecursionError):
        raise BadUserInput(
            "a multipart request needs the JSON fields `operations` and `map` "
            "(GraphQL multipart request spec)"
        ) from None
    if not isinstance(operations, dict) or not isinstance(file_map, dict):
        raise BadUserInput("`operations` and `map` must be JSON objects")
    upload_variables = set()
    for key, paths in file_map.items():
        if key not in uploads or not isinstance(paths, list):
            raise BadUserInput(f"map: no file part named {key!r}")
        if len(paths) > 1:  # its bytes are moved into the store by the first field that takes them
            raise BadUserInput(
                f"map: file part {key!r} is mapped to {len(paths)} variables; an upload is used "
                "once, so send the file once for each variable that takes it"
            )
        for path in paths:
            place(operations, str(path), uploads[key])
            steps = str(path).split(".")  # variables.NAME[.…]
            if len(steps) > 1 and steps[0] == "variables":
                upload_variables.add(steps[1])
    refuse_uploads_used_twice(operations.get("query"), upload_variables)
    return operations


def refuse_uploads_used_twice(query: Any, variables: set[str]) -> None:
    """BAD_USER_INPUT for an upload variable the operation names more than once: the first
    field that takes an upload moves its bytes into the store, so a second has none."""
    if not isinstance(query, str) or not variables:
        return
    try:  # a query that does not parse is refused with its syntax error later
        document = parse(query, no_location=True, max_tokens=MAX_QUERY_TOKENS)
    except GraphQLError:
        return
    uses = VariableUses()
    visit(document, uses)
    twice = sorted(name for name in variables if uses.counts[name] > 1)
    if twice:
        raise BadUserInput(
            f"${twice[0]}: an upload is used once, and the operation names it "
            f"{uses.counts[twice[0]]} times; send the file once for each field that takes it"
        )


class VariableUses(Visitor):
    """How often each variable is used in a document (its definitions are not uses)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def enter_variable_definition(self, *_: Any) -> Any:
        return self.SKIP

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.counts[node.name.value] += 1


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
