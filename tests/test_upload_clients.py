"""The README's upload example with a third-party GraphQL client (gql), against a live
hub: uploads work once the client sends the preflight header, and not without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import model_input, modelci_serve
from gql import Client, FileVar, gql
from gql.transport.exceptions import TransportQueryError, TransportServerError
from gql.transport.httpx import HTTPXTransport

from modelci.server.embedded import free_port

REGISTER = gql(
    """
    mutation Register($input: ModelInput!, $weight: Upload!) {
      registerModel(input: $input, weight: $weight, convert: false) { id weight { size } }
    }"""
)


def test_gql_uploads_with_the_preflight_header(tmp_path: Path) -> None:
    weight = tmp_path / "resnet.pt"
    weight.write_bytes(b"weights" * 1000)
    with modelci_serve(tmp_path / "hub", free_port(), workers="0") as (hub, _):
        transport = HTTPXTransport(
            url=f"{hub}/graphql", headers={"Apollo-Require-Preflight": "true"}
        )
        with Client(transport=transport) as session:
            result = session.execute(
                REGISTER,
                variable_values={"input": model_input(), "weight": FileVar(str(weight))},
                upload_files=True,
            )
        assert result["registerModel"]["weight"]["size"] == 7000

        bare = HTTPXTransport(url=f"{hub}/graphql")  # no preflight header: refused (CSRF)
        with (
            Client(transport=bare) as session,
            pytest.raises((TransportQueryError, TransportServerError)),
        ):
            session.execute(
                REGISTER,
                variable_values={"input": model_input(version=2), "weight": FileVar(str(weight))},
                upload_files=True,
            )
