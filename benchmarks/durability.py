"""What durable acknowledgements cost: register p50 with `j: true` against without.

Two `modelci serve` processes on the embedded database run side by side: the default
(every write journaled on disk before it is acknowledged: `w: majority, j: true`) and
the same server with `MODELCI_WRITE_JOURNAL=false MODELCI_WRITE_CONCERN=1` (what the
hub did before: a write acknowledged from the database's memory, lost when its
process is killed). One light client (`loadgen.py`) registers models with a 64 KiB
weight, one request at a time, alternating between the servers in rounds; a second
phase does the same for `updateModel` (one document write). A third phase times one
`insert_one` straight on an embedded database, with and without `j: true`: the price
of the journal sync alone, without the hub around it.

    python benchmarks/durability.py [--requests 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from hub import serve, wait_until_up
from loadgen import Connection, multipart

from modelci.server.embedded import EmbeddedDatabase, free_port

REGISTER = """mutation($input: ModelInput!, $weight: Upload!) {
  registerModel(input: $input, weight: $weight, convert: false) { id } }"""
UPDATE = """mutation($id: ID!, $input: ModelUpdateInput!) {
  updateModel(id: $id, input: $input) { id } }"""
WEIGHT = os.urandom(64 * 1024)
SETTINGS: dict[str, dict[str, str]] = {
    "durable (w: majority, j: true)": {},
    "not journaled (w: 1, j: false)": {"write_journal": "false", "write_concern": "1"},
}


async def register(connection: Connection, version: int) -> str:
    fields = {
        "architecture": "ResNet18",
        "framework": "PyTorch",
        "engine": "NONE",
        "version": version,
        "dataset": "ImageNet",
        "task": "Image_Classification",
    }
    operations = json.dumps({"query": REGISTER, "variables": {"input": fields, "weight": None}})
    body, content_type = multipart(
        {"operations": operations, "map": '{"0": ["variables.weight"]}'},
        {"0": ("w.bin", WEIGHT)},
    )
    response = await connection.request(
        "POST",
        "/graphql",
        body=body,
        headers={"Content-Type": content_type, "apollo-require-preflight": "true"},
    )
    return str(response.json()["data"]["registerModel"]["id"])


async def update(connection: Connection, model_id: str, value: float) -> None:
    variables = {"id": model_id, "input": {"metric": [{"name": "acc", "value": value}]}}
    response = await connection.request(
        "POST", "/graphql", json_body={"query": UPDATE, "variables": variables}
    )
    assert response.json()["data"]["updateModel"]["id"] == model_id


async def measure(urls: dict[str, str], requests: int, rounds: int) -> dict[str, dict[str, float]]:
    samples: dict[str, dict[str, list[float]]] = {
        name: {"register": [], "update": []} for name in urls
    }
    versions = dict.fromkeys(urls, 0)
    for _ in range(rounds):
        for name, url in urls.items():
            async with await Connection.open(url) as connection:
                ids = []
                for _ in range(requests):
                    versions[name] += 1
                    started = time.perf_counter()
                    ids.append(await register(connection, versions[name]))
                    samples[name]["register"].append(time.perf_counter() - started)
                for index in range(requests):
                    started = time.perf_counter()
                    await update(connection, ids[index], index / requests)
                    samples[name]["update"].append(time.perf_counter() - started)
    return {
        name: {op: statistics.median(values) * 1e3 for op, values in ops.items()}
        for name, ops in samples.items()
    }


def raw_insert_p50(folder: Path, writes: int) -> dict[str, float]:
    """p50 of one small insert on the embedded database, journaled and not (ms)."""
    from pymongo import MongoClient

    p50 = {}
    with EmbeddedDatabase(folder / "raw") as database:
        for name, options in (("j: true", {"journal": True}), ("j: false", {"journal": False})):
            with MongoClient(database.url, **options) as client:
                collection = client.bench[name.replace(": ", "_")]
                samples = []
                for index in range(writes):
                    started = time.perf_counter()
                    collection.insert_one({"index": index, "payload": "x" * 512})
                    samples.append(time.perf_counter() - started)
                p50[name] = statistics.median(samples) * 1e3
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        urls, servers = {}, []
        try:
            for index, (name, env) in enumerate(SETTINGS.items()):
                port = free_port()
                servers.append(serve(Path(folder) / f"hub{index}", port, **env))
                urls[name] = f"http://127.0.0.1:{port}"
            for url in urls.values():
                wait_until_up(url)
            p50 = asyncio.run(measure(urls, args.requests, args.rounds))
            raw = raw_insert_p50(Path(folder), args.requests * args.rounds)
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait()
    for name, figures in p50.items():
        print(
            f"{name:>32}: register p50 {figures['register']:.2f} ms, "
            f"update p50 {figures['update']:.2f} ms"
        )
    print(
        f"raw insert_one on the embedded database: j: true {raw['j: true']:.2f} ms, "
        f"j: false {raw['j: false']:.2f} ms"
    )
    durable, fast = (p50[name] for name in SETTINGS)
    print(
        f"ratios durable/not journaled ({args.requests} requests x {args.rounds} rounds): "
        f"register {durable['register'] / fast['register']:.2f}, "
        f"update {durable['update'] / fast['update']:.2f}"
    )


if __name__ == "__main__":
    main()
