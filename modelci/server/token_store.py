"""API tokens: ``mci_<id>_<secret>``; the database keeps a salted SHA-256 of the secret.

Secrets are 256 random bits, so a fast salted hash is enough (no password stretching);
comparison is constant-time. Nothing is cached: a revoked token stops working at once,
in every server process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from modelci.core.domain import utcnow
from modelci.core.errors import BadUserInput, NotFound
from modelci.core.identity import ApiToken, Identity, Scope

TOKEN_FORMAT = re.compile(r"^mci_([0-9a-f]{24})_([A-Za-z0-9_-]{43})$")


def digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def token_from_document(document: dict[str, Any]) -> ApiToken:
    return ApiToken(
        id=str(document["_id"]),
        name=document["name"],
        scopes=[Scope(scope) for scope in document["scopes"]],
        create_time=document["create_time"],
        last_used=document.get("last_used"),
        revoked=document.get("revoked", False),
    )


class TokenStore:
    def __init__(self, tokens: AsyncCollection[dict[str, Any]]) -> None:
        self.tokens = tokens

    async def create(
        self, name: str, scopes: list[Scope], secret: str | None = None
    ) -> tuple[ApiToken, str]:
        """A new token and its plain text, which is never stored."""
        if not name or len(name) > 128:
            raise BadUserInput("name: give 1 to 128 characters", field="name")
        if not scopes:
            raise BadUserInput("scopes: give at least one scope", field="scopes")
        token_id = ObjectId()
        secret = secret or secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        document = {
            "_id": token_id,
            "name": name,
            "scopes": sorted({scope.value for scope in scopes}),
            "salt": salt,
            "hash": digest(salt, secret),
            "create_time": utcnow(),
            "last_used": None,
            "revoked": False,
        }
        await self.tokens.insert_one(document)
        return token_from_document(document), f"mci_{token_id}_{secret}"

    async def verify(self, token: str) -> Identity | None:
        match = TOKEN_FORMAT.match(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        document = await self.tokens.find_one({"_id": ObjectId(token_id), "revoked": False})
        if document is None or not hmac.compare_digest(
            digest(document["salt"], secret), document["hash"]
        ):
            return None
        scopes = [Scope(each) for each in document["scopes"]]
        return Identity.with_scopes(document["name"], scopes, str(document["_id"]))

    async def list_all(self) -> list[ApiToken]:
        documents = await self.tokens.find({}).sort("_id", 1).to_list()
        return [token_from_document(document) for document in documents]

    async def revoke_quietly(self, name: str) -> None:
        await self.tokens.update_many({"name": name}, {"$set": {"revoked": True}})

    async def revoke(self, id_or_name: str) -> list[ApiToken]:
        """Revoke the token with this id, or every live token with this name."""
        query: dict[str, Any] = (
            {"_id": ObjectId(id_or_name)} if ObjectId.is_valid(id_or_name) else {"name": id_or_name}
        )
        revoked = []
        while True:
            document = await self.tokens.find_one_and_update(
                {**query, "revoked": False},
                {"$set": {"revoked": True}},
                return_document=ReturnDocument.AFTER,
            )
            if document is None:
                break
            revoked.append(token_from_document(document))
        if not revoked:
            raise NotFound(f"no live token {id_or_name!r}")
        return revoked
