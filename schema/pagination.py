"""Cursor connections (first/after, pageInfo), as GitHub's and Shopify's APIs page lists."""

from __future__ import annotations

import base64
import binascii
from typing import Generic, Protocol, TypeVar

import strawberry

from .context import Page
from .errors import BadUserInput

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


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type(description="A page of results, newest first.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]


def encode_cursor(kind: str, item_id: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{item_id}".encode()).decode()


def decode_cursor(kind: str, cursor: str | None) -> str | None:
    """The id inside a cursor this API handed out for ``kind``, or BAD_USER_INPUT."""
    if cursor is None:
        return None
    try:
        found, _, item_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (binascii.Error, UnicodeError, ValueError):
        found, item_id = "", ""
    if found != kind or not item_id:
        raise BadUserInput("after: not a cursor returned by this list", field="after")
    return item_id


def check_page_size(first: int) -> None:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise BadUserInput(f"first: must be between 1 and {MAX_PAGE_SIZE}", field="first")


def connection(kind: str, page: Page[ItemT]) -> Connection[ItemT]:
    edges = [Edge(cursor=encode_cursor(kind, item.id), node=item) for item in page.items]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None
        ),
    )
