"""Two `modelci serve` processes over one database, as behind a load balancer: a write
acknowledged by one is read back at once through the other (a model, a filtered page,
an alias), a thousand times in a row, raw GraphQL carrying the write's time as the
Python client does; and then through the database's death and restart under that load,
no stale answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from conftest import PREFLIGHT, modelci_serve, register_live

from modelci.client import ModelHub
from modelci.core.domain import READ_AFTER_HEADER, WRITE_TIME_HEADER
from modelci.server.embedded import free_port, running_database_url

GET = "query($id: ID!) { model(id: $id) { id tags { name value } } }"
PAGE = """query($value: String!) {
  models(first: 5, where: {tags: [{name: "round", equals: $value}]}) { edges { node { id } } }
}"""
BY_ALIAS = 'query { model(alias: "champion") { id } }'
SET_TAG = """mutation($id: ID!, $value: String!) {
  setModelTag(id: $id, name: "round", value: $value) { id }
}"""
SET_ALIAS = 'mutation($id: ID!) { setModelAlias(alias: "champion", modelId: $id) { alias } }'


class Side:
    """One server process's door, carrying the latest write time it was told of."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120, headers=PREFLIGHT)
        self.read_after: str | None = None

    def post(self, query: str, **variables: Any) -> tuple[dict[str, Any], str | None]:
        headers = {READ_AFTER_HEADER: self.read_after} if self.read_after else {}
        response = self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        return response.json(), response.headers.get(WRITE_TIME_HEADER)

    def data(self, query: str, **variables: Any) -> dict[str, Any]:
        body, _ = self.post(query, **variables)
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data

    def write(self, query: str, **variables: Any) -> str:
        body, written = self.post(query, **variables)
        assert not body.get("errors"), body
        assert written is not None, "a write is answered with its time"
        return written


def read_back(writer: Side, reader: Side, round_: int, models: list[str]) -> None:
    """One write through ``writer``, read at once through ``reader`` with its time."""
    model = models[round_ % 2]
    if round_ % 2 == 0:
        reader.read_after = writer.write(SET_TAG, id=model, value=str(round_))
        if round_ % 4 == 0:
            tags = reader.data(GET, id=model)["model"]["tags"]
            assert {"name": "round", "value": str(round_)} in tags, round_
        else:
            edges = reader.data(PAGE, value=str(round_))["models"]["edges"]
            assert [edge["node"]["id"] for edge in edges] == [model], round_
    else:
        reader.read_after = writer.write(SET_ALIAS, id=model)
        assert reader.data(BY_ALIAS)["model"]["id"] == model, round_


def read_model_of(side: Side) -> dict[str, Any]:
    ready: dict[str, Any] = side.http.get("/readyz").json()["readModel"]
    return ready


def test_a_write_through_one_process_is_read_at_once_through_another(tmp_path: Path) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    # Journaled writes, the default: the database is killed below, and only a write it
    # keeps can be promised to every reader after its restart (unjournaled ones may be
    # lost, and the database's clock then starts again below their times).
    shared = {"workers": "0", "weight_store": "gridfs"}
    with modelci_serve(first_dir, free_port(), **shared) as (first_url, first_process):
        database = running_database_url(first_dir / "db")
        assert database is not None
        with modelci_serve(second_dir, free_port(), mongodb_url=database, **shared) as (
            second_url,
            _,
        ):
            models = [
                register_live(first_url, f"weights {n}".encode(), "convert: false", version=n)
                for n in (1, 2)
            ]
            first, second = Side(first_url), Side(second_url)
            # A made-up time from the future only makes its own request wait (for the
            # stream's next batch): it never makes memory look more current than it is.
            second.read_after = "4000000000.0"
            assert second.data(GET, id=models[0])["model"]["id"] == models[0]
            for round_ in range(1000):
                writer, reader = (first, second) if round_ % 3 else (second, first)
                read_back(writer, reader, round_, models)
            answered = read_model_of(second)["reads"]
            assert answered.get("memory", 0) >= 500, answered  # from memory, not the database

            # The Python client carries its writes' time itself; another client is given it.
            with ModelHub(first_url) as writing, ModelHub(second_url) as reading:
                for round_ in range(20):
                    writing.set_tag(models[0], "client", str(round_))
                    reading.write_time = writing.write_time
                    tags = {(tag.name, tag.value) for tag in reading.get_by_id(models[0]).tags}
                    assert ("client", str(round_)) in tags

            # The database dies under load and comes back (the first hub restarts it):
            # both processes' change streams are lost; every answer stays current.
            (database_process,) = [
                child
                for child in first_process.children(recursive=True)
                if "secantus" in " ".join(child.cmdline())
            ]
            database_process.kill()
            for round_ in range(1000, 1100):
                writer, reader = (first, second) if round_ % 3 else (second, first)
                read_back(writer, reader, round_, models)
            for side in (first, second):
                state = read_model_of(side)
                assert state["streamOpens"] >= 2, state  # the stream was lost, and opened again
