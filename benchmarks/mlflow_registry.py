"""Registry workload, side by side: ModelCI Hub against MLflow's model registry server.

Both run here on loopback: `modelci serve --processes 2` (embedded database, one web
process per core of the 2-core development machine) and `mlflow server --backend-store-uri
sqlite:///… --artifacts-destination …` (its default: 4 worker processes).
The same light client (`loadgen.py`: one keep-alive connection per simulated user,
responses parsed by httptools) drives equivalent operations, interleaved:
- register: ours `registerModel` with a small weight; MLflow creates a registered model,
  a run, uploads the weight as an artifact and creates a model version with tags;
- get: ours `model(id)`; MLflow `model-versions/get`;
- list: ours `models(architecture, task, first: 100)`; MLflow
  `registered-models/search` with the same filter on tags.
Each cell runs --rounds times, the two systems alternating; prints the round with the
median throughput (p50/p95/p99, requests/s) per operation and concurrency, and ours / MLflow.

MLflow is not a dependency of this project: install it where you like
(`python -m venv /tmp/mlflow && /tmp/mlflow/bin/pip install mlflow`) and point at it:

    MLFLOW_BIN=/tmp/mlflow/bin/mlflow python benchmarks/mlflow_registry.py [--models 100]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from loadgen import Connection, multipart

from modelci.server.embedded import free_port

WEIGHT = os.urandom(64 * 1024)
ARCHITECTURES = 10
TASK = "Image_Classification"
REGISTER = """mutation($input: ModelInput!, $weight: Upload!) {
  registerModel(input: $input, weight: $weight, convert: false) { id } }"""
GET = "query($id: ID!) { model(id: $id) { id architecture version weight { sha256 } } }"
LIST = """query($a: String, $t: Task) {
  models(architecture: $a, task: $t, first: 100) { nodes { id } } }"""

Operation = Callable[[Connection, int], Awaitable[Any]]


class Ours:
    name = "modelci"

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.versions = itertools.count(1)  # every registration a new key

    async def register(self, client: Connection, index: int) -> None:
        fields = {
            "architecture": f"arch-{index % ARCHITECTURES}",
            "framework": "PyTorch",
            "engine": "NONE",
            "version": next(self.versions),
            "dataset": "ImageNet",
            "task": TASK,
        }
        operations = json.dumps({"query": REGISTER, "variables": {"input": fields, "weight": None}})
        body, content_type = multipart(
            {"operations": operations, "map": '{"0": ["variables.weight"]}'},
            {"0": ("w.bin", WEIGHT)},
        )
        response = await client.request(
            "POST",
            "/graphql",
            body=body,
            headers={"Content-Type": content_type, "apollo-require-preflight": "true"},
        )
        self.ids.append(response.json()["data"]["registerModel"]["id"])

    async def get(self, client: Connection, index: int) -> None:
        model_id = self.ids[index % len(self.ids)]
        body = (
            await client.request(
                "POST", "/graphql", json_body={"query": GET, "variables": {"id": model_id}}
            )
        ).json()
        assert body["data"]["model"]["id"] == model_id

    async def list(self, client: Connection, index: int) -> None:
        variables = {"a": f"arch-{index % ARCHITECTURES}", "t": TASK}
        body = (
            await client.request(
                "POST", "/graphql", json_body={"query": LIST, "variables": variables}
            )
        ).json()
        assert body["data"]["models"]["nodes"]


class MLflow:
    name = "mlflow"
    api = "/api/2.0/mlflow"

    def __init__(self) -> None:
        self.experiment = ""
        self.names: list[str] = []

    async def setup(self, client: Connection) -> None:
        response = await client.request(
            "POST",
            f"{self.api}/experiments/create",
            json_body={"name": f"bench-{uuid.uuid4().hex[:8]}"},
        )
        self.experiment = response.json()["experiment_id"]

    async def register(self, client: Connection, index: int) -> None:
        name = f"model-{uuid.uuid4().hex[:10]}"
        tags = [
            {"key": "architecture", "value": f"arch-{index % ARCHITECTURES}"},
            {"key": "task", "value": TASK},
            {"key": "framework", "value": "PyTorch"},
        ]
        created = await client.request(
            "POST", f"{self.api}/registered-models/create", json_body={"name": name, "tags": tags}
        )
        created.raise_for_status()
        run = (
            await client.request(
                "POST", f"{self.api}/runs/create", json_body={"experiment_id": self.experiment}
            )
        ).json()["run"]["info"]
        path = f"{self.experiment}/{run['run_id']}/artifacts/model/w.bin"
        uploaded = await client.request(
            "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{path}", body=WEIGHT
        )
        uploaded.raise_for_status()
        version = await client.request(
            "POST",
            f"{self.api}/model-versions/create",
            json_body={
                "name": name,
                "run_id": run["run_id"],
                "tags": tags,
                "source": f"mlflow-artifacts:/{self.experiment}/{run['run_id']}/artifacts/model",
            },
        )
        version.raise_for_status()
        self.names.append(name)

    async def get(self, client: Connection, index: int) -> None:
        name = self.names[index % len(self.names)]
        response = await client.request(
            "GET", f"{self.api}/model-versions/get", params={"name": name, "version": "1"}
        )
        assert response.json()["model_version"]["name"] == name

    async def list(self, client: Connection, index: int) -> None:
        query = f"tags.architecture = 'arch-{index % ARCHITECTURES}' AND tags.task = '{TASK}'"
        response = await client.request(
            "GET",
            f"{self.api}/registered-models/search",
            params={"filter": query, "max_results": 100},
        )
        assert response.json()["registered_models"]


async def run(url: str, operation: Operation, requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(requests))
    connections = [await Connection.open(url) for _ in range(concurrency)]

    async def user(connection: Connection) -> None:
        for index in counter:
            started = time.perf_counter()
            await operation(connection, index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(user(connection) for connection in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    ordered = sorted(latencies)
    rank = lambda p: ordered[max(0, -(-len(ordered) * p // 100) - 1)]  # noqa: E731 nearest rank
    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "rps": len(ordered) / elapsed}


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(url: str) -> None:
    for _ in range(1200):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--models", type=int, default=100, help="registrations per system and concurrency"
    )
    parser.add_argument("--requests", type=int, default=200, help="gets and lists per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per cell; the median is shown")
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="our web processes (MLflow runs its default, 4 workers)",
    )
    args = parser.parse_args()
    mlflow_bin = os.environ.get("MLFLOW_BIN", "mlflow")
    with tempfile.TemporaryDirectory() as folder:
        ours_port, mlflow_port = free_port(), free_port()
        env = {**os.environ, "MODELCI_WORKERS": "0", "MODELCI_LOG_LEVEL": "WARNING"}
        servers = [
            start(
                [
                    sys.executable,
                    "-m",
                    "modelci.server.cli",
                    "serve",
                    "--port",
                    str(ours_port),
                    "--data-dir",
                    f"{folder}/hub",
                    "--processes",
                    str(args.processes),
                ],
                env,
            ),
            start(
                [
                    mlflow_bin,
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mlflow_port),
                    "--backend-store-uri",
                    f"sqlite:///{folder}/mlflow.db",
                    "--artifacts-destination",
                    f"{folder}/mlflow-artifacts",
                ]
            ),
        ]
        try:
            urls = {
                "modelci": f"http://127.0.0.1:{ours_port}",
                "mlflow": f"http://127.0.0.1:{mlflow_port}",
            }
            wait_for(f"{urls['modelci']}/readyz")
            wait_for(f"{urls['mlflow']}/health")
            systems = {"modelci": Ours(), "mlflow": MLflow()}

            async def setup() -> None:
                async with await Connection.open(urls["mlflow"]) as connection:
                    await systems["mlflow"].setup(connection)  # type: ignore[attr-defined]

            asyncio.run(setup())
            rounds: dict[tuple[str, int, str], list[dict[str, float]]] = defaultdict(list)
            for operation in ("register", "get", "list"):
                for concurrency in (1, 16):
                    for _ in range(args.rounds):
                        for name, system in systems.items():  # interleaved, same order each time
                            count = args.models if operation == "register" else args.requests
                            rounds[(operation, concurrency, name)].append(
                                asyncio.run(
                                    run(urls[name], getattr(system, operation), count, concurrency)
                                )
                            )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait()

    # Each cell: the round with the median throughput.
    results = {
        key: sorted(runs, key=lambda r: r["rps"])[len(runs) // 2] for key, runs in rounds.items()
    }
    ratios = []
    for (operation, concurrency, name), r in results.items():
        print(
            f"{operation:>8} c={concurrency:<2} {name:>7}: p50 {r['p50'] * 1e3:7.2f} ms  "
            f"p95 {r['p95'] * 1e3:7.2f} ms  p99 {r['p99'] * 1e3:7.2f} ms  {r['rps']:7.1f} req/s"
        )
        if name == "mlflow":
            ours = results[(operation, concurrency, "modelci")]["rps"]
            ratios.append(f"{operation} c={concurrency} {ours / r['rps']:.1f}x")
    print("ratios modelci/mlflow (req/s): " + ", ".join(ratios))


if __name__ == "__main__":
    main()
