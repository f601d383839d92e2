"""GraphQL overhead: `model(id)` through GraphQL versus a bare Starlette endpoint.

Both run in one uvicorn server process (a child of this script) on the embedded
database; the bare endpoint does the same database read and returns the same JSON.
The load comes from this process over loopback (`loadgen.py`: one keep-alive
connection per client), alternating the endpoints in rounds.

A third endpoint is the ceiling for any server built on graphql-core: the same
operation, parsed and validated once, executed by graphql-core alone on the hub's
schema and resolvers (no HTTP view, no extensions: no authorization, limits or
metrics), its data returned as JSON. Printed last: GraphQL's throughput over
graphql-core's (issue 16's goal: at least 0.9), and over the bare endpoint's.

    python benchmarks/graphql_overhead.py [--seconds 3] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from inspect import isawaitable
from pathlib import Path
from typing import Any

import httpx
from loadgen import Connection

from modelci.server.embedded import EmbeddedDatabase, free_port

FIELDS = "id architecture framework engine version dataset task weight { sha256 size }"
QUERY = "query Get($id: ID!) { model(id: $id) { %s } }" % FIELDS


def serve(port: int, mongodb_url: str, data_dir: str) -> None:
    """The child: the hub's app plus the bare endpoint, under uvicorn."""
    import graphql
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from strawberry.execution.is_awaitable import optimized_is_awaitable

    from modelci.schema import schema
    from modelci.server.app import create_app
    from modelci.server.settings import Settings

    settings = Settings(data_dir=Path(data_dir), workers=0, _env_file=None)
    app = create_app(settings, mongodb_url=mongodb_url)

    async def bare(request: Request) -> JSONResponse:
        model = await request.app.state.services.registry.get(request.path_params["model_id"])
        return JSONResponse(
            {
                "data": {
                    "model": {
                        "id": model.id,
                        "architecture": model.architecture,
                        "framework": model.framework.value,
                        "engine": model.engine.value,
                        "version": model.version,
                        "dataset": model.dataset,
                        "task": model.task.value,
                        "weight": {"sha256": model.weight.sha256, "size": model.weight.size},
                    }
                }
            }
        )

    graphql_view = next(route.endpoint for route in app.routes if route.path == "/graphql")
    document = graphql.parse(QUERY)
    assert not graphql.validate(schema._schema, document)

    async def graphql_core(request: Request) -> JSONResponse:
        payload = json.loads(await request.body())
        result = graphql.execute(
            schema._schema,
            document,
            variable_values=payload["variables"],
            context_value=await graphql_view.get_context(request, None),
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
        )
        if isawaitable(result):
            result = await result
        return JSONResponse({"data": result.data})

    app.router.routes.append(Route("/bare/models/{model_id}", bare))
    app.router.routes.append(Route("/graphql-core", graphql_core, methods=["POST"]))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


ENDPOINTS = ("graphql", "graphql-core", "bare")


async def load(
    url: str, model_id: str, endpoint: str, seconds: float, concurrency: int
) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    body = {"query": QUERY, "variables": {"id": model_id}}

    async def user(connection: Connection) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if endpoint == "bare":
                response = await connection.request("GET", f"/bare/models/{model_id}")
            else:
                response = await connection.request("POST", f"/{endpoint}", json_body=body)
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)

    connections = [await Connection.open(url) for _ in range(concurrency)]
    await asyncio.gather(*(user(connection) for connection in connections))
    for connection in connections:
        connection.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "MONGODB_URL", "DATA_DIR"))
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.serve[2])
        return

    with tempfile.TemporaryDirectory() as folder, EmbeddedDatabase(Path(folder) / "db") as db:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), db.url, folder],
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            model_id = register_one(url)
            check_same_json(url, model_id)
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in ENDPOINTS}
            for _ in range(args.rounds):
                for name in ENDPOINTS:
                    latencies = asyncio.run(
                        load(url, model_id, name, args.seconds, args.concurrency)
                    )
                    results[name].append(
                        {
                            "rps": len(latencies) / args.seconds,
                            "p50": statistics.median(latencies),
                        }
                    )
        finally:
            server.terminate()
            server.wait()

    summary = {}
    for name, rounds in results.items():
        rps = statistics.median(r["rps"] for r in rounds)
        p50 = statistics.median(r["p50"] for r in rounds)
        summary[name] = rps
        print(
            f"{name:>12}: {rps:8.0f} requests/s, p50 {p50 * 1e3:.2f} ms "
            f"(median of {args.rounds} rounds, concurrency {args.concurrency})"
        )
    # Each round's endpoints ran one after the other, under the same load from whatever
    # else the machine does: the round's own ratio is steadier than a ratio of medians.
    pairs = zip(results["graphql"], results["graphql-core"], strict=True)
    per_round = sorted(ours["rps"] / core["rps"] for ours, core in pairs)
    print(
        f"ratio GraphQL / graphql-core alone: {summary['graphql'] / summary['graphql-core']:.2f} "
        f"(goal >= 0.9); per round: median {statistics.median(per_round):.2f}, "
        f"range {per_round[0]:.2f}-{per_round[-1]:.2f}"
    )
    print(
        f"ratio GraphQL / bare throughput: {summary['graphql'] / summary['bare']:.2f} "
        f"(graphql-core alone / bare: {summary['graphql-core'] / summary['bare']:.2f})"
    )


def check_same_json(url: str, model_id: str) -> None:
    """The three endpoints answer with the same JSON: the comparison is like for like."""
    body = {"query": QUERY, "variables": {"id": model_id}}
    with httpx.Client(base_url=url) as client:
        answers = [
            client.post("/graphql", json=body).json(),
            client.post("/graphql-core", json=body).json(),
            client.get(f"/bare/models/{model_id}").json(),
        ]
    if not answers[0] == answers[1] == answers[2]:
        raise RuntimeError(f"the endpoints disagree: {answers}")


def register_one(url: str) -> str:
    from modelci.client import ModelHub

    for _ in range(300):  # the child needs a moment to listen
        try:
            with ModelHub(url) as hub:
                model = hub.register_model(
                    b"weights",
                    architecture="ResNet50",
                    framework="PyTorch",
                    engine="NONE",
                    version=1,
                    dataset="ImageNet",
                    task="Image_Classification",
                )
                return model.id
        except httpx.TransportError:  # HubUnreachable: not listening yet
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


if __name__ == "__main__":
    main()
