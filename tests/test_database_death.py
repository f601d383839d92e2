"""The embedded database under `modelci serve`: a data directory one hub serves is refused
to a second one, saying which hub holds it, and a database that dies is started again
with what it acknowledged (real `modelci serve`, real database processes, kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from conftest import modelci_env, modelci_serve, register_live

from modelci.server.embedded import free_port

T = TypeVar("T")

SERVE = [sys.executable, "-m", "modelci.cli", "serve"]
MODEL = "query($id: ID!) { model(id: $id) { id architecture version } }"


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 60.0) -> T:
    """Poll an observable state until ``probe`` returns something; bounded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def database_of(server: psutil.Process) -> psutil.Process | None:
    return next(
        (child for child in server.children() if "secantus" in " ".join(child.cmdline())), None
    )


def model_answer(hub: str, model_id: str) -> dict[str, Any] | None:
    try:
        response = httpx.post(
            f"{hub}/graphql", json={"query": MODEL, "variables": {"id": model_id}}, timeout=10
        )
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    found: dict[str, Any] | None = (body.get("data") or {}).get("model")
    return found


def test_a_second_hub_on_the_same_data_is_told_which_hub_holds_it(tmp_path: Path) -> None:
    with modelci_serve(tmp_path, free_port(), workers="0") as (url, server):
        second = subprocess.run(
            [*SERVE, "--port", str(free_port()), "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            env=modelci_env(workers="0"),
            timeout=120,
        )
        assert second.returncode == 1, second.stderr
        said = second.stderr
        assert f"{tmp_path} is in use by another hub (pid {server.pid}, serving {url})" in said
        assert "another --data-dir" in said
        assert "Traceback" not in said and "waiting" not in said
        # The hub that holds it goes on serving.
        assert httpx.get(f"{url}/readyz").status_code == 200


def test_a_database_that_dies_is_started_again_with_what_it_acknowledged(
    tmp_path: Path,
) -> None:
    port = free_port()
    log: list[str] = []
    with modelci_serve(tmp_path, port, log=log, workers="0") as (url, server):
        first = register_live(url, b"first weights", architecture="BeforeDeath")

        database = database_of(server)
        assert database is not None
        database.send_signal(signal.SIGSTOP)  # a database that hangs: not ready, and why
        try:
            silent = httpx.get(f"{url}/readyz", timeout=30)
            assert silent.status_code == 503
            assert "did not answer" in silent.json()["reason"]
        finally:
            database.send_signal(signal.SIGCONT)

        database.kill()  # kill -9
        database.wait()
        again = wait_for("the model to be readable again", lambda: model_answer(url, first))
        assert again["architecture"] == "BeforeDeath"
        restarted = database_of(server)
        assert restarted is not None and restarted.pid != database.pid
        assert httpx.get(f"{url}/readyz").status_code == 200
        second = register_live(url, b"second weights", architecture="AfterDeath")
        assert httpx.get(f"{url}/models/{second}/weight").content == b"second weights"
    said = "".join(log)
    assert "the embedded database exited (killed by SIGKILL)" in said
    assert "the embedded database is back" in said
    assert "Traceback" not in said

    with modelci_serve(tmp_path, port, workers="0") as (url, _):
        assert model_answer(url, first) == {
            "id": first,
            "architecture": "BeforeDeath",
            "version": 1,
        }
        assert model_answer(url, second) is not None


def test_a_database_that_will_not_stay_up_stops_the_hub_with_why(tmp_path: Path) -> None:
    log: list[str] = []
    with modelci_serve(tmp_path, free_port(), log=log, workers="0") as (_, server):
        stopped = threading.Event()

        def keep_killing() -> None:  # every database it starts dies before it answers
            while not stopped.is_set():
                try:
                    database = database_of(server)
                    if database is not None:
                        database.kill()
                except psutil.Error:
                    pass
                stopped.wait(0.02)

        killer = threading.Thread(target=keep_killing, daemon=True)
        killer.start()
        try:
            code = server.wait(timeout=120)
        finally:
            stopped.set()
            killer.join()
    said = "".join(log)
    assert code == 1, said
    assert "did not start again after 5 tries" in said
    assert "Traceback" not in said and "Application shutdown failed" not in said
    assert not os.path.exists(tmp_path / "db.url")
