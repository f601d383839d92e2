"""What the Python client adds to a request: ``ModelHub.get_by_id`` against the same
GraphQL request sent over a raw keep-alive connection (``loadgen.py``).

One ``modelci serve`` (embedded database, no workers) holds one model with a static
profile and a few dynamic results. The client's request is recorded once (its query
text and variables, exactly as the generated operation sends them) and replayed raw;
the two alternate request by request, one at a time, in rounds of ``--requests``
each, and each round's p50 ratio is reported; the last line is the median ratio client/raw.

    python benchmarks/client_overhead.py [--requests 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub import serve, wait_until_up
from loadgen import Connection

from modelci.client import ModelHub
from modelci.server.embedded import free_port


def timing(p50: float) -> dict[str, float]:
    return {"avg": p50, "p50": p50, "p95": p50 * 1.5, "p99": p50 * 2}


def seeded_model(hub: ModelHub) -> str:
    model = hub.register_model(
        os.urandom(64 * 1024),
        architecture="ResNet18",
        framework="PyTorch",
        engine="NONE",
        version=1,
        dataset="ImageNet",
        task="Image_Classification",
        inputs=[{"name": "input", "shape": [-1, 3, 224, 224], "dtype": "TYPE_FP32"}],
        outputs=[{"name": "output", "shape": [-1, 1000]}],
        metric=[{"name": "acc", "value": 0.69}],
    )
    hub.register_static_profiling_result(
        model.id,
        {
            "parameters": 11_689_512,
            "flops": 3_600_000_000,
            "memory": 1,
            "mread": 2,
            "mwrite": 3,
            "mrw": 5,
            "macs": 1_800_000_000,
        },
    )
    for batch in (1, 2, 4, 8):
        hub.register_dynamic_profiling_result(
            model.id,
            {
                "ip": "127.0.0.1",
                "device_id": "cpu",
                "device_name": "CPU",
                "batch": batch,
                "memory": {"total_memory": 1 << 33, "memory_usage": 1 << 28, "utilization": 0.5},
                "latency": {
                    "initialization_latency": timing(0.5),
                    "preprocess_latency": timing(0.001),
                    "inference_latency": timing(0.01 * batch),
                    "postprocess_latency": timing(0.001),
                },
                "throughput": {
                    "batch_formation_throughput": 1000.0,
                    "preprocess_throughput": 1000.0,
                    "inference_throughput": 100.0,
                    "postprocess_throughput": 1000.0,
                },
            },
        )
    return model.id


def recorded_request(hub: ModelHub, model_id: str) -> dict[str, Any]:
    """The JSON body the client sends for get_by_id, as it sends it."""
    seen: dict[str, Any] = {}
    execute = hub.api.execute

    def recording(
        query: str, operation_name: str | None = None, variables: Any = None, **kwargs: Any
    ) -> Any:
        seen.update(query=query, operationName=operation_name, variables=variables)
        return execute(query, operation_name, variables, **kwargs)

    hub.api.execute = recording  # type: ignore[method-assign]
    try:
        hub.get_by_id(model_id)
    finally:
        del hub.api.execute  # back to the class's method
    return seen


async def interleaved_p50(
    hub: ModelHub, model_id: str, connection: Connection, body: dict[str, Any], requests: int
) -> tuple[float, float]:
    """(client p50, raw p50) in ms over requests sent alternately, one at a time, so that
    whatever else the machine does weighs on both alike."""
    client, raw = [], []
    for _ in range(requests):
        start = time.perf_counter()
        hub.get_by_id(model_id)
        client.append(time.perf_counter() - start)
        start = time.perf_counter()
        response = await connection.request("POST", "/graphql", json_body=body)
        response.raise_for_status()
        raw.append(time.perf_counter() - start)
    return statistics.median(client) * 1e3, statistics.median(raw) * 1e3


async def measure(url: str, requests: int, rounds: int) -> list[tuple[float, float]]:
    with ModelHub(url) as hub:
        model_id = seeded_model(hub)
        body = recorded_request(hub, model_id)
        async with await Connection.open(url) as connection:
            await interleaved_p50(hub, model_id, connection, body, 50)  # warm-up
            return [
                await interleaved_p50(hub, model_id, connection, body, requests)
                for _ in range(rounds)
            ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = serve(Path(folder), port)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url)
            figures = asyncio.run(measure(url, args.requests, args.rounds))
        finally:
            server.terminate()
            server.wait()
    for index, (client, raw) in enumerate(figures, start=1):
        print(
            f"round {index}: client p50 {client:.3f} ms, raw p50 {raw:.3f} ms, "
            f"ratio {client / raw:.2f}"
        )
    ratio = statistics.median(client / raw for client, raw in figures)
    client = statistics.median(client for client, _ in figures)
    raw = statistics.median(raw for _, raw in figures)
    print(
        f"get_by_id ({args.requests} requests x {args.rounds} rounds): client p50 "
        f"{client:.3f} ms, raw keep-alive p50 {raw:.3f} ms, client/raw {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
