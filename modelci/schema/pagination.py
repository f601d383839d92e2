"""Cursor connections (first/after, pageInfo), as GitHub's and Shopify's APIs page lists."""

from __future__ import annotations

import base64
import binascii
from typing import Generic, Protocol, TypeVar

import strawberry

from modelci.core.errors import BadUserInput
from modelci.core.ports import Page, PageRequest

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

NodeT = TypeVar("NodeT")


class HasId(Protocol):
    id: str


ItemT = TypeVar("ItemT", bound=HasId)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
    has_previous_page: bool
    start_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type(description="A page of results, newest first.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    # The edges' nodes, kept as a list rather than computed by a resolver, so that the
    # executor reads a page's nodes as plain data (``execution``).
    nodes: list[NodeT]


def encode_cursor(kind: str, item_id: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{item_id}".encode()).decode()


def decode_cursor(kind: str, cursor: str | None, argument: str = "after") -> str | None:
    """The id inside a cursor this API handed out for ``kind``, or BAD_USER_INPUT."""
    if cursor is None:
        return None
    try:
        found, _, item_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (binascii.Error, UnicodeError, ValueError):
        found, item_id = "", ""
    if found != kind or not item_id:
        raise BadUserInput(f"{argument}: not a cursor returned by this list", field=argument)
    return item_id


def page_request(
    kind: str, first: int | None, after: str | None, last: int | None, before: str | None
) -> PageRequest:
    """Forward (``first``/``after``, ``first`` by default) or backward (``last``/``before``,
    towards newer items), as Relay connections page; mixing the two is BAD_USER_INPUT."""
    if last is not None or before is not None:
        if first is not None or after is not None:
            raise BadUserInput(
                "page forward (first, after) or backward (last, before), not both",
                field="last" if last is not None else "before",
            )
        size = DEFAULT_PAGE_SIZE if last is None else last
        check_page_size(size, "last")
        return PageRequest(last=size, before=decode_cursor(kind, before, "before"))
    size = DEFAULT_PAGE_SIZE if first is None else first
    check_page_size(size, "first")
    return PageRequest(first=size, after=decode_cursor(kind, after))


def check_page_size(size: int, argument: str = "first") -> None:
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BadUserInput(f"{argument}: must be between 1 and {MAX_PAGE_SIZE}", field=argument)


def connection(kind: str, page: Page[ItemT]) -> Connection[ItemT]:
    edges = [Edge(cursor=encode_cursor(kind, item.id), node=item) for item in page.items]
    return Connection(
        edges=edges,
        nodes=page.items,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            end_cursor=edges[-1].cursor if edges else None,
            has_previous_page=page.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
        ),
    )
