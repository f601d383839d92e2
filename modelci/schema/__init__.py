"""The GraphQL surface of ModelCI Hub: types, resolvers, the schema and its extensions.

``modelci.schema.schema`` (the Strawberry schema) is built on first use, not on import:
importing a module of this package (its types, say) does not pay for building it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HubSchema", "build_schema", "schema"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
