"""The `modelci` command as a user runs it: a live server over HTTP, stopped and restarted."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import PREFLIGHT, REGISTER, model_input, modelci_serve, multipart
from test_observability import sample
from typer.testing import CliRunner

from modelci.cli.main import app
from modelci.server.embedded import free_port


def test_serve_keeps_models_and_weights_across_restarts(tmp_path: Path) -> None:
    weight = os.urandom(2 * 1024 * 1024)
    port = free_port()
    with modelci_serve(tmp_path, port) as (url, server):
        database_processes = server.children(recursive=True)
        assert database_processes, "the embedded database runs as a child process"
        # A terminal's Ctrl+C signals its whole process group; the database is outside
        # it, so the server shuts its app down first and then stops the database.
        database = [child for child in database_processes if "secantus" in child.cmdline()]
        assert database and os.getsid(database[0].pid) != os.getsid(server.pid)
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert (
            "graphiql" in httpx.get(f"{url}/graphql", headers={"accept": "text/html"}).text.lower()
        )

        request = multipart(REGISTER, {"input": model_input()}, {"weight": ("r.pt", weight)})
        body = httpx.post(f"{url}/graphql", headers=PREFLIGHT, **request).json()
        model_id = body["data"]["registerModel"]["id"]
    assert not any(process.is_running() for process in database_processes)

    with modelci_serve(tmp_path, port) as (url, _):
        query = "query($id: ID!) { model(id: $id) { architecture weight { sha256 } } }"
        body = httpx.post(f"{url}/graphql", json={"query": query, "variables": {"id": model_id}})
        model = body.json()["data"]["model"]
        assert model == {
            "architecture": "ResNet50",
            "weight": {"sha256": hashlib.sha256(weight).hexdigest()},
        }
        assert httpx.get(f"{url}/models/{model_id}/weight").content == weight
    assert (tmp_path / "db").is_dir() and (tmp_path / "weights" / "blobs").is_dir()


def test_serve_with_two_processes_shares_one_registry_and_its_weights(tmp_path: Path) -> None:
    weight = os.urandom(256 * 1024)
    delete = "mutation($id: ID!) { deleteModel(id: $id) { id } }"

    def register(version: int) -> str:
        request = multipart(
            REGISTER, {"input": model_input(version=version)}, {"weight": ("w.pt", weight)}
        )
        with httpx.Client(base_url=url) as client:  # a connection of its own
            body = client.post("/graphql", headers=PREFLIGHT, **request).json()
        return str(body["data"]["registerModel"]["id"])

    def unregister(model_id: str) -> None:
        with httpx.Client(base_url=url) as client:
            body = client.post("/graphql", json={"query": delete, "variables": {"id": model_id}})
        assert body.json()["data"]["deleteModel"]["id"] == model_id

    blobs = tmp_path / "weights" / "blobs"
    with modelci_serve(tmp_path, free_port(), processes="2", workers="0") as (url, server):
        spawned = [" ".join(child.cmdline()) for child in server.children()]
        assert sum("multiprocessing.spawn" in command for command in spawned) == 2
        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(register, range(1, 13)))  # the same bytes, 12 models
            # Deletes of models holding those bytes race registrations of the same bytes.
            deleting = pool.map(unregister, first[:6])
            second = list(pool.map(register, range(13, 19)))
            list(deleting)
            for model_id in first[6:] + second:
                assert httpx.get(f"{url}/models/{model_id}/weight").content == weight
            assert len(list(blobs.glob("*/*"))) == 1
            list(pool.map(unregister, first[6:] + second))
        assert list(blobs.glob("*/*")) == []
    assert list((tmp_path / "staging").iterdir()) == []


def test_metrics_of_two_processes_are_reported_together(tmp_path: Path) -> None:
    """Whichever process answers the scrape, it reports what both have served."""
    query = {"query": "{ models(first: 1) { nodes { id } } }"}
    labels = {"operation": "models", "type": "query", "outcome": "ok"}
    with modelci_serve(tmp_path, free_port(), processes="2", workers="0") as (url, _):
        for _ in range(20):
            with httpx.Client(base_url=url) as client:  # a connection of its own
                assert client.post("/graphql", json=query).json()["data"]
        for _ in range(6):
            with httpx.Client(base_url=url) as client:
                text = client.get("/metrics").text
            assert sample(text, "modelci_graphql_operations_total", **labels) == 20
            assert sample(text, "modelci_job_queue_depth") == 0


def test_init_env_writes_every_setting(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    result = CliRunner().invoke(app, ["init-env", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    for name in (
        "MODELCI_MONGODB_URL",
        "MODELCI_DATA_DIR",
        "MODELCI_PORT",
        "MODELCI_MAX_UPLOAD_BYTES",
        "MODELCI_WEIGHT_STORE",
    ):
        assert f"# {name}=" in text
    again = CliRunner().invoke(app, ["init-env", str(target)])
    assert again.exit_code == 1 and "exists" in again.output


def test_export_schema_matches_the_committed_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"
    result = CliRunner().invoke(app, ["export-schema", str(target)])
    assert result.exit_code == 0, result.output
    committed = Path(__file__).parent.parent / "schema.graphql"
    assert target.read_text() == committed.read_text()


def test_a_server_killed_mid_upload_leaves_nothing_behind(tmp_path: Path) -> None:
    port = free_port()
    with modelci_serve(tmp_path, port, workers="0") as (url, server):
        database = server.children(recursive=True)
        request = httpx.Client().build_request(
            "POST",
            f"{url}/graphql",
            headers=PREFLIGHT,
            **multipart(
                REGISTER, {"input": model_input()}, {"weight": ("big.pt", os.urandom(8 << 20))}
            ),
        )
        body = request.read()

        def upload() -> Iterator[bytes]:
            for start in range(0, len(body), 1 << 20):
                if start >= 4 << 20:
                    server.kill()  # kill -9, halfway through the upload
                    server.wait()
                yield body[start : start + (1 << 20)]

        with pytest.raises(httpx.HTTPError):
            httpx.post(str(request.url), headers=dict(request.headers), content=upload())
        psutil.wait_procs(database, timeout=30)  # the database follows its parent down

    with modelci_serve(tmp_path, port, workers="0") as (url, _):
        body = httpx.post(f"{url}/graphql", json={"query": "{ models { nodes { id } } }"})
        assert body.json()["data"]["models"]["nodes"] == []
    assert list((tmp_path / "staging").iterdir()) == []
    assert list((tmp_path / "weights" / "blobs").glob("*/*")) == []


def test_profile_and_convert_take_their_limits_and_cancel_cancels(tmp_path: Path) -> None:
    runner = CliRunner()
    with modelci_serve(tmp_path, free_port(), workers="0") as (url, _):
        request = multipart(REGISTER, {"input": model_input()}, {"weight": ("r.pt", b"w")})
        model_id = httpx.post(f"{url}/graphql", headers=PREFLIGHT, **request).json()["data"][
            "registerModel"
        ]["id"]
        limits = ["--budget", "2m", "--p99", "10ms", "--max-batch", "64"]
        queued = runner.invoke(
            app, ["profile", model_id, *limits, "--no-follow", "--json", "--server", url]
        )
        assert queued.exit_code == 0, queued.output
        job = json.loads(queued.stdout)
        assert (job["budget_seconds"], job["max_p99_latency"], job["max_batch"]) == (120, 0.01, 64)
        assert job["batch_sizes"] == []  # none given: an adaptive sweep

        bad = runner.invoke(app, ["profile", model_id, "--budget", "2", "--server", url])
        assert bad.exit_code == 2 and "not a duration" in bad.output

        # An alias names the model wherever an id does.
        named = runner.invoke(app, ["alias", "set", "cli-prod", model_id, "--server", url])
        assert named.exit_code == 0, named.output
        by_alias = runner.invoke(
            app, ["profile", "cli-prod", "--no-follow", "--json", "--server", url]
        )
        assert by_alias.exit_code == 0, by_alias.output
        assert json.loads(by_alias.stdout)["model_id"] == model_id
        unknown_alias = runner.invoke(app, ["profile", "no-such-alias", "--server", url])
        assert unknown_alias.exit_code == 4, unknown_alias.output
        runner.invoke(app, ["cancel", json.loads(by_alias.stdout)["id"], "--server", url])

        converting = ["convert", model_id, "--no-follow", "--server", url]
        unknown = runner.invoke(app, [*converting, "--to", "KERAS"])
        assert unknown.exit_code == 2 and "one of NONE, TFS, TORCHSCRIPT" in unknown.output
        to_onnx = runner.invoke(app, [*converting, "--to", "ONNX", "--profile"])
        assert to_onnx.exit_code == 2 and "converts to nothing, not ONNX" in to_onnx.output

        cancelled = runner.invoke(app, ["cancel", job["id"], "--server", url])
        assert cancelled.exit_code == 0, cancelled.output
        assert f"job {job['id']}: CANCELLED" in cancelled.stdout
        again = runner.invoke(app, ["cancel", job["id"], "--server", url])
        assert again.exit_code == 5  # CONFLICT: it has ended already
