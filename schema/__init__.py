"""The domain and the GraphQL surface of ModelCI Hub.

``modelci.schema.schema`` (the Strawberry schema) is built on first use, not on import:
the client and the worker import the domain, errors and enums from here and must not
pay for, or depend on, building the server's GraphQL schema.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HubSchema", "build_schema", "schema"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
