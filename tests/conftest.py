"""Fixtures: a real MongoDB-wire server, the ASGI app, and a small GraphQL client.

The database is the embedded SecantusDB started for the session (data on disk in a
temporary directory), or the server named by MODELCI_MONGODB_URL. Each test gets a
database of its own, dropped afterwards.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from pymongo import MongoClient
from starlette.applications import Starlette

from modelci.core.domain import READ_AFTER_HEADER
from modelci.server.app import create_app
from modelci.server.embedded import EmbeddedDatabase, free_port
from modelci.server.read_model import time_text
from modelci.server.settings import Settings

PREFLIGHT = {"apollo-require-preflight": "true"}

MODEL_FIELDS = """
    id architecture framework engine version dataset task creator
    metric { name value }
    inputs { name shape dtype format }
    outputs { name shape dtype format }
    modelStatus parentModelId createTime updateTime
    weight { filename size sha256 contentType }
    profileResult {
      staticResult { parameters flops memory mread mwrite mrw }
      dynamicResults {
        ip deviceId deviceName batch createTime
        memory { totalMemory memoryUsage utilization }
        latency {
          initializationLatency { avg p50 p95 p99 }
          preprocessLatency { avg p50 p95 p99 }
          inferenceLatency { avg p50 p95 p99 }
          postprocessLatency { avg p50 p95 p99 }
        }
        throughput {
          batchFormationThroughput preprocessThroughput
          inferenceThroughput postprocessThroughput
        }
      }
    }
"""

REGISTER = (
    """
mutation Register($input: ModelInput!, $weight: Upload!) {
  registerModel(input: $input, weight: $weight) { %s }
}"""
    % MODEL_FIELDS
)


def model_input(**overrides: Any) -> dict[str, Any]:
    """A valid registerModel input, like ML-Model-CI's ResNet-50 example."""
    fields: dict[str, Any] = {
        "architecture": "ResNet50",
        "framework": "PyTorch",
        # Weights in the framework's own format (a state dict, say): stored, not read.
        "engine": "NONE",
        "version": 1,
        "dataset": "ImageNet",
        "metric": [{"name": "acc", "value": 0.76}],
        "task": "Image_Classification",
        "inputs": [
            {
                "name": "input",
                "shape": [-1, 3, 224, 224],
                "dtype": "TYPE_FP32",
                "format": "FORMAT_NCHW",
            }
        ],
        "outputs": [{"name": "output", "shape": [-1, 1000], "dtype": "TYPE_FP32"}],
        "modelStatus": ["PUBLISHED"],
        "creator": "tester",
    }
    fields.update(overrides)
    return fields


def dynamic_result(
    ip: str = "127.0.0.1", device_id: str = "cpu", batch: int = 1, p50: float = 0.01
) -> dict[str, Any]:
    latency = {"avg": p50, "p50": p50, "p95": p50 * 1.5, "p99": p50 * 2}
    return {
        "ip": ip,
        "deviceId": device_id,
        "deviceName": "Test CPU",
        "batch": batch,
        "memory": {"totalMemory": 8 * 1024**3, "memoryUsage": 1024**3, "utilization": 0.1},
        "latency": {
            "initializationLatency": latency,
            "preprocessLatency": latency,
            "inferenceLatency": latency,
            "postprocessLatency": latency,
        },
        "throughput": {
            "batchFormationThroughput": batch / p50,
            "preprocessThroughput": batch / p50,
            "inferenceThroughput": batch / p50,
            "postprocessThroughput": batch / p50,
        },
    }


@dataclass
class Api:
    """GraphQL over HTTP as a frontend sends it, multipart uploads included."""

    http: httpx.AsyncClient
    # Sent as a client sends the time of its latest write (``sees_database``).
    read_after: str | None = None

    async def sees_database(self, client: Any) -> None:
        """What another program wrote straight into the database is read back from here
        on: requests carry the database's time now, as a client carries its last write's
        (the hub answers reads once its copy in memory has applied that time)."""
        reply = client.admin.command("ping")
        time = (await reply if inspect.isawaitable(reply) else reply)["operationTime"]
        self.read_after = time_text(time)

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> dict[str, Any]:
        headers = {READ_AFTER_HEADER: self.read_after} if self.read_after else {}
        if files:
            response = await self.http.post(
                "/graphql",
                headers=PREFLIGHT | headers,
                **multipart(query, variables or {}, files),
            )
        else:
            response = await self.http.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
            )
        assert response.headers["content-type"].startswith("application/json"), response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> dict[str, Any]:
        """The data of a request that must succeed."""
        body = await self.post(query, variables, files)
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def error_code(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> str:
        """The code of the one error a request must fail with."""
        body = await self.post(query, variables, files)
        assert body.get("errors"), body
        assert len(body["errors"]) == 1, body["errors"]
        code: str = body["errors"][0]["extensions"]["code"]
        return code

    async def register(
        self, weight: bytes = b"weights", filename: str = "model.pt", **overrides: Any
    ) -> dict[str, Any]:
        data = await self.data(
            REGISTER, {"input": model_input(**overrides)}, {"weight": (filename, weight)}
        )
        model: dict[str, Any] = data["registerModel"]
        return model


def multipart(
    query: str, variables: dict[str, Any], files: dict[str, tuple[str, bytes]]
) -> dict[str, Any]:
    """The GraphQL multipart request spec: operations, map, then the files."""
    variables = dict(variables)
    file_map: dict[str, list[str]] = {}
    parts: dict[str, tuple[str, bytes, str]] = {}
    for index, (variable, (filename, content)) in enumerate(files.items()):
        variables[variable] = None
        file_map[str(index)] = [f"variables.{variable}"]
        parts[str(index)] = (filename, content, "application/octet-stream")
    operations = json.dumps({"query": query, "variables": variables})
    return {"data": {"operations": operations, "map": json.dumps(file_map)}, "files": parts}


@pytest.fixture(scope="session")
def mongodb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("MODELCI_MONGODB_URL")
    if external:
        yield external
        return
    with EmbeddedDatabase(tmp_path_factory.mktemp("embedded") / "db") as database:
        yield database.url


@pytest.fixture
def settings(tmp_path: Path, mongodb_url: str) -> Iterator[Settings]:
    database = f"modelci_test_{uuid.uuid4().hex[:12]}"
    yield Settings(  # type: ignore[call-arg]
        mongodb_url=None,
        database=database,
        data_dir=tmp_path / "data",
        workers=0,  # tests start the workers they need
        _env_file=None,
    )
    with MongoClient(mongodb_url) as client:
        client.drop_database(database)


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[Api]:
    """The app started (lifespan included) behind an HTTP client, as a frontend sees it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield Api(http)


@pytest.fixture
def app(settings: Settings, mongodb_url: str) -> Starlette:
    return create_app(settings, mongodb_url=mongodb_url)


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[Api]:
    async with serving(app) as client:
        yield client


def modelci_env(**settings: str) -> dict[str, str]:
    """This environment without the caller's MODELCI_* settings, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELCI_")}
    env.update({f"MODELCI_{name.upper()}": value for name, value in settings.items()})
    return env


@contextmanager
def modelci_serve(
    data_dir: Path,
    port: int,
    cwd: Path | None = None,
    log: list[str] | None = None,
    **settings: str,
) -> Iterator[tuple[str, psutil.Process]]:
    """`modelci serve` on the embedded database; yields its URL once it is listening.

    ``settings`` become MODELCI_* environment variables (workers="0", say). With ``cwd``
    it runs there, started as a user starts it: the installed `modelci` command. With
    ``log``, what it logs is gathered there, complete once the server has stopped.
    """
    command = [sys.executable, "-m", "modelci.cli"]
    if cwd is not None:
        command = [str(Path(sys.executable).with_name("modelci"))]
    process = subprocess.Popen(
        [*command, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stderr=subprocess.PIPE,
        text=True,
        env=modelci_env(**settings),
        cwd=cwd,
    )
    assert process.stderr is not None
    log = [] if log is None else log
    listening, started, processes = False, 0, int(settings.get("processes", "1"))
    for line in process.stderr:  # the server says when it listens and each process is up
        log.append(line)
        listening = listening or "Uvicorn running on" in line
        started += "Application startup complete" in line
        if listening and started == processes:
            break
    else:
        raise AssertionError("modelci serve did not start:\n" + "".join(log))
    # Keep reading what it logs, so that a full pipe never blocks the server.
    drain = threading.Thread(target=lambda: log.extend(process.stderr or []), daemon=True)
    drain.start()
    killed_by_the_test = False
    try:
        yield f"http://127.0.0.1:{port}", psutil.Process(process.pid)
    finally:
        killed_by_the_test = process.poll() is not None
        if not killed_by_the_test:
            process.send_signal(signal.SIGINT)  # as Ctrl+C
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()  # a hub that does not stop fails the test, and is not left running
            process.wait()
            raise
        drain.join(timeout=10)
    assert killed_by_the_test or process.returncode == 0, "".join(log)


def register_live(hub: str, content: bytes, flags: str = "", **fields: Any) -> str:
    """Register a model on a live hub (``flags`` such as "convert: false"); its id."""
    query = (
        REGISTER.replace("weight: $weight)", f"weight: $weight, {flags})") if flags else REGISTER
    )
    variables = {"input": model_input(**fields)}
    request = multipart(query, variables, {"weight": ("model.bin", content)})
    # The first upload a server checks starts its check helper (onnx, onnxruntime, torch
    # imported): seconds, more than httpx's default 5 s on a loaded machine.
    body = httpx.post(f"{hub}/graphql", headers=PREFLIGHT, timeout=120, **request).json()
    assert not body.get("errors"), body
    model_id: str = body["data"]["registerModel"]["id"]
    return model_id


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`modelci serve` with no worker of its own: the tests start and kill workers."""
    with modelci_serve(tmp_path_factory.mktemp("hub"), free_port(), workers="0") as (url, _):
        yield url


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small convolutional network exported to ONNX with a dynamic batch axis."""
    import torch
    from networks import SmallConvNet

    path = tmp_path_factory.mktemp("model") / "small.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SmallConvNet().eval(),
            (torch.randn(2, 3, 16, 16),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    return path
