"""Attacks replayed against the real server process: each must be refused and leave the
server answering (issue 13's table; the rows not yet covered are listed in the README's
Security section)."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from conftest import modelci_serve

from modelci.server.embedded import free_port


def fragment_bomb(levels: int) -> str:
    """``{ ...F<levels> }`` where each fragment spreads the one below it twice: a text of
    ~40 bytes a level that expands to 2**levels fields."""
    fragments = ["fragment F0 on Query { __typename }"] + [
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    ]
    return "{ ...F%d }\n%s" % (levels, "\n".join(fragments))


def test_a_fragment_bomb_is_refused_and_the_server_keeps_answering(tmp_path: Path) -> None:
    with modelci_serve(tmp_path, free_port(), workers="0") as (hub, server):
        with httpx.Client(base_url=hub, timeout=60) as client, ThreadPoolExecutor(4) as pool:
            bombs = [
                pool.submit(client.post, "/graphql", json={"query": fragment_bomb(levels)})
                for levels in (20, 39, 39)
            ]
            assert client.get("/healthz").json() == {"status": "ok"}
            for bomb in bombs:
                body = bomb.result().json()
                assert body.get("data") is None
                (error,) = body["errors"]
                assert error["extensions"]["code"] == "BAD_USER_INPUT"
                assert "fragments are spread out" in error["message"]
            # A small fragment nest is still a query like any other.
            body = client.post("/graphql", json={"query": fragment_bomb(3)}).json()
            assert body == {"data": {"__typename": "Query"}}
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
