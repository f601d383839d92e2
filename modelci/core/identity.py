"""Who a caller is and what it may do: token scopes, a token's record, the identity a
request carries.

Scopes: ``read`` (queries, subscriptions, weight downloads), ``write`` (read, plus the
mutations on models and jobs), ``worker`` (write, plus claiming and reporting jobs),
``admin`` (everything, token management included); each implies the ones before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from pydantic import BaseModel, Field


class Scope(Enum):
    read = "read"
    write = "write"
    worker = "worker"
    admin = "admin"


IMPLIED = {
    Scope.read: {Scope.read},
    Scope.write: {Scope.read, Scope.write},
    Scope.worker: {Scope.read, Scope.write, Scope.worker},
    Scope.admin: set(Scope),
}


class ApiToken(BaseModel):
    """A token's record; the secret itself is shown once and stored only as a salted hash."""

    id: str
    name: str = Field(min_length=1, max_length=128)
    scopes: list[Scope]
    create_time: datetime
    last_used: datetime | None = None
    revoked: bool = False


@dataclass(frozen=True)
class Identity:
    name: str
    scopes: frozenset[Scope]
    token_id: str | None = None  # the token it was proved with (None: auth is off)

    @classmethod
    def with_scopes(cls, name: str, scopes: list[Scope], token_id: str | None = None) -> Identity:
        granted: set[Scope] = set()
        for scope in scopes:
            granted |= IMPLIED[scope]
        return cls(name, frozenset(granted), token_id)

    @classmethod
    def everyone(cls) -> Identity:
        """The caller when auth is off (local use on loopback only)."""
        return cls.with_scopes("anonymous", [Scope.admin])

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes
