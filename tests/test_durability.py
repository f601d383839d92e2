"""Nothing acknowledged is lost: `modelci serve` stopped as supervisors stop it, or killed.

Each test runs the real server process on the embedded database, registers models
through HTTP, stops or kills it right after the answers, starts it again on the same
data directory and asks for every model and its bytes.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import httpx
import psutil
from conftest import modelci_serve, register_live

from modelci.server.embedded import free_port

MODEL = "query($id: ID!) { model(id: $id) { id version weight { sha256 size } } }"
REGISTRATIONS = 8  # per round, the last one answered just before the stop


def register_burst(hub: str, first_version: int) -> dict[str, bytes]:
    """Several registrations in a row; each model's id and its bytes."""
    registered = {}
    for version in range(first_version, first_version + REGISTRATIONS):
        content = os.urandom(64 * 1024)
        model_id = register_live(hub, content, "convert: false", version=version)
        registered[model_id] = content
    return registered


def assert_all_there(hub: str, registered: dict[str, bytes]) -> None:
    with httpx.Client(base_url=hub) as client:
        for model_id, content in registered.items():
            body = client.post("/graphql", json={"query": MODEL, "variables": {"id": model_id}})
            assert not body.json().get("errors"), f"acknowledged model {model_id} was lost"
            model = body.json()["data"]["model"]
            assert model["weight"]["sha256"] == hashlib.sha256(content).hexdigest()
            assert client.get(f"/models/{model_id}/weight").content == content


def database_of(server: psutil.Process) -> psutil.Process:
    (database,) = [p for p in server.children(recursive=True) if "secantus" in p.cmdline()]
    return database


def test_a_stop_signal_right_after_registering_loses_nothing(tmp_path: Path) -> None:
    """Each stop signal in turn, on the same data: each round finds everything the rounds
    before it registered, so one restart after another loses nothing either."""
    port, registered = free_port(), {}
    stops = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
    for round_, stop in enumerate(stops):
        with modelci_serve(tmp_path, port, workers="0") as (hub, server):
            assert_all_there(hub, registered)
            database = database_of(server)
            registered |= register_burst(hub, round_ * REGISTRATIONS + 1)
            server.send_signal(stop)  # as systemd, Docker or a closing terminal would
            # The server stops in order and exits 0; the database before it, not killed.
            assert server.wait(timeout=60) == 0, stop.name
            assert not database.is_running(), stop.name
    with modelci_serve(tmp_path, port, workers="0") as (hub, _):
        assert_all_there(hub, registered)


def test_killing_the_server_and_its_database_loses_nothing_acknowledged(tmp_path: Path) -> None:
    port, registered = free_port(), {}
    for round_ in range(3):
        with modelci_serve(tmp_path, port, workers="0") as (hub, server):
            assert_all_there(hub, registered)
            everything = [server, *server.children(recursive=True)]
            registered |= register_burst(hub, round_ * REGISTRATIONS + 1)
            for process in everything:  # the OOM killer, a container runtime's hard stop
                process.kill()
            psutil.wait_procs(everything, timeout=30)
    with modelci_serve(tmp_path, port, workers="0") as (hub, _):
        assert_all_there(hub, registered)
