"""Scale: get-by-id, a filtered list, the first page of all models and a page filtered by
measured performance (`models(profile: …)`) at 1 k, 10 k and 100 k registered models.

Models are bulk-loaded as metadata (documents as the registry writes them, no weight
bytes, each with three dynamic results: CPU at batch 1 and 8, a GPU at batch 32, their
latencies spread over the models) into the embedded database (or
MODELCI_MONGODB_URL's, into a fresh database).
Their ids carry their creation time, as every ObjectId does: by default one model a
minute, going back from now (100 k models: 69 days of history), and with
`--minutes-apart 0` all created in the same instant, the worst case for a database
that reads every match before applying a limit. The queries go through the whole app
(GraphQL, in-process ASGI) and, as the reference, straight to the database with
PyMongo (`find_one` by id; `find` with the filter, `_id` descending and the limit).
Prints p50 at each size and the ratios p50(largest) / p50(smallest).

    python benchmarks/scale.py [--sizes 1000 10000 100000] [--requests 200]
                               [--minutes-apart 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from pymongo import MongoClient

from modelci.core.domain import (
    DynamicProfileResult,
    InfoTuple,
    ProfileFilter,
    ProfileLatency,
    ProfileMemory,
    ProfileThroughput,
    utcnow,
)
from modelci.server.app import create_app
from modelci.server.embedded import EmbeddedDatabase
from modelci.server.model_query import profile_condition
from modelci.server.settings import Settings
from modelci.server.storage import MODELS, to_bson

ARCHITECTURES = 100
TASKS = ["Image_Classification", "Object_Detection", "Segmentation", "Text_Classification"]
GET = "query($id: ID!) { model(id: $id) { id architecture version weight { sha256 } } }"
LIST = """query($a: String, $t: Task) {
  models(architecture: $a, task: $t, first: 10) { nodes { id version } pageInfo { hasNextPage } }
}"""
ALL = "{ models(first: 10) { nodes { id version } pageInfo { hasNextPage } } }"
PROFILE = """query($p: ProfileFilterInput) {
  models(profile: $p, first: 10) { nodes { id version } pageInfo { hasNextPage } }
}"""
# A CPU result at batch 8 within 10 ms at p99: about half the models have one.
MEASURED = {"device": "cpu", "batch": 8, "maxP99Latency": 0.01}
KINDS = ("get", "list", "all", "profile", "db get", "db list", "db all", "db profile")
DB_ALL_REQUESTS = 10
WARM_UP = 50


def document(index: int, minutes_apart: float) -> dict[str, Any]:
    """Model number ``index``, created ``index * minutes_apart`` minutes ago."""
    now = utcnow()
    created = now - timedelta(minutes=index * minutes_apart)
    return {
        "_id": ObjectId(ObjectId.from_datetime(created).binary[:4] + ObjectId().binary[4:]),
        "architecture": f"arch-{index % ARCHITECTURES}",
        "framework": "PyTorch",
        "engine": "NONE",
        "version": index + 1,
        "dataset": "ImageNet",
        "metric": [{"name": "acc", "value": 0.5}],
        "task": TASKS[index % len(TASKS)],
        "inputs": [
            {"name": "x", "shape": [-1, 3, 224, 224], "dtype": "TYPE_FP32", "format": "FORMAT_NCHW"}
        ],
        "outputs": [
            {"name": "y", "shape": [-1, 1000], "dtype": "TYPE_FP32", "format": "FORMAT_NONE"}
        ],
        "model_status": ["PUBLISHED"],
        "creator": "bench",
        "parent_model_id": None,
        "conversion": None,
        "weight": {
            "filename": "w.pt",
            "size": 1,
            "sha256": f"{index:064x}",
            "content_type": "application/octet-stream",
            "format": None,
        },
        "profile_result": {"static_result": None, "dynamic_results": measured(index, created)},
        "create_time": created,
        "update_time": created,
    }


def measured(index: int, created: datetime) -> list[dict[str, Any]]:
    """Model ``index``'s dynamic results as the registry stores them: CPU at batch 1 and
    8, cuda:0 at batch 32; the CPU's batch-8 p99 is 5 or 15 ms, every other model."""
    results = []
    for device_id, device_name, batch, p99 in (
        ("cpu", "Intel Xeon", 1, 0.002),
        ("cpu", "Intel Xeon", 8, 0.005 if index % 2 else 0.015),
        ("cuda:0", "NVIDIA A100", 32, 0.004),
    ):
        timing = InfoTuple(avg=p99 / 2, p50=p99 / 2, p95=p99 * 0.9, p99=p99)
        result = DynamicProfileResult(
            ip="10.0.0.1",
            device_id=device_id,
            device_name=device_name,
            batch=batch,
            memory=ProfileMemory(total_memory=2**34, memory_usage=2**28, utilization=0.5),
            latency=ProfileLatency(
                initialization_latency=timing,
                preprocess_latency=timing,
                inference_latency=timing,
                postprocess_latency=timing,
            ),
            throughput=ProfileThroughput(
                batch_formation_throughput=batch / p99,
                preprocess_throughput=batch / p99,
                inference_throughput=batch / p99,
                postprocess_throughput=batch / p99,
            ),
            create_time=created,
        )
        results.append(to_bson(result.model_dump()))
    return results


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


async def p50s(app: Any, collection: Any, ids: list[str], requests: int) -> dict[str, float]:
    """p50 of each query through the app and, as the reference, straight to the database.

    Each kind runs as its own phase: interleaved, a slow list left the database busy
    enough to slow the get that followed it.
    """
    rng = random.Random(0)
    chosen = [rng.choice(ids) for _ in range(requests)]
    filters = [
        {"architecture": f"arch-{index % ARCHITECTURES}", "task": TASKS[index % len(TASKS)]}
        for index in range(requests)
    ]
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        # Untimed: the database settles after a bulk load before the first phase counts.
        for model_id in chosen[:WARM_UP]:
            await client.post("/graphql", json={"query": GET, "variables": {"id": model_id}})
        for model_id in chosen:
            started = time.perf_counter()
            response = await client.post(
                "/graphql", json={"query": GET, "variables": {"id": model_id}}
            )
            samples["get"].append(time.perf_counter() - started)
            assert "errors" not in response.json()
        for where in filters:
            variables = {"a": where["architecture"], "t": where["task"]}
            started = time.perf_counter()
            response = await client.post("/graphql", json={"query": LIST, "variables": variables})
            samples["list"].append(time.perf_counter() - started)
            assert response.json()["data"]["models"]["nodes"]
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.post("/graphql", json={"query": ALL})
            samples["all"].append(time.perf_counter() - started)
            assert response.json()["data"]["models"]["pageInfo"]["hasNextPage"]
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.post(
                "/graphql", json={"query": PROFILE, "variables": {"p": MEASURED}}
            )
            samples["profile"].append(time.perf_counter() - started)
            assert response.json()["data"]["models"]["pageInfo"]["hasNextPage"]
    for model_id in chosen:
        started = time.perf_counter()
        collection.find_one({"_id": ObjectId(model_id)})
        samples["db get"].append(time.perf_counter() - started)
    for where in filters:
        started = time.perf_counter()
        collection.find(where).sort("_id", -1).limit(11).to_list()
        samples["db list"].append(time.perf_counter() - started)
    # On the embedded database this plain query reads every model (5 s at 100 k), so
    # it runs a few times only.
    for _ in range(min(requests, DB_ALL_REQUESTS)):
        started = time.perf_counter()
        collection.find({}).sort("_id", -1).limit(11).to_list()
        samples["db all"].append(time.perf_counter() - started)
    condition = profile_condition(
        ProfileFilter(device="cpu", batch=8, max_p99_latency=MEASURED["maxP99Latency"])
    )
    for _ in range(min(requests, DB_ALL_REQUESTS)):  # reads every match there, as "db all"
        started = time.perf_counter()
        collection.find(condition).sort("_id", -1).limit(11).to_list()
        samples["db profile"].append(time.perf_counter() - started)
    return {kind: median_ms(values) for kind, values in samples.items()}


async def measure(
    url: str, folder: str, sizes: list[int], requests: int, minutes_apart: float
) -> dict[int, dict[str, float]]:
    settings = Settings(  # type: ignore[call-arg]
        data_dir=Path(folder), workers=0, database=f"scale_{ObjectId()}", _env_file=None
    )
    app = create_app(settings, mongodb_url=url)
    results: dict[int, dict[str, float]] = {}
    ids: list[str] = []
    with MongoClient(url) as client:
        collection = client[settings.database][MODELS]
        async with app.router.lifespan_context(app):  # creates the indexes
            for size in sizes:
                started = time.perf_counter()
                for start in range(len(ids), size, 5000):
                    batch = [
                        document(index, minutes_apart)
                        for index in range(start, min(size, start + 5000))
                    ]
                    collection.insert_many(batch, ordered=False)
                    ids += [str(doc["_id"]) for doc in batch]
                print(f"loaded {size} models ({time.perf_counter() - started:.1f} s)")
                results[size] = await p50s(app, collection, ids, requests)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--minutes-apart", type=float, default=1.0)
    args = parser.parse_args()
    external = os.environ.get("MODELCI_MONGODB_URL")  # a real MongoDB, when given
    with tempfile.TemporaryDirectory() as folder:
        if external:
            results = asyncio.run(
                measure(external, folder, args.sizes, args.requests, args.minutes_apart)
            )
        else:
            with EmbeddedDatabase(Path(folder) / "db") as db:
                results = asyncio.run(
                    measure(db.url, folder, args.sizes, args.requests, args.minutes_apart)
                )
    for size, p50 in results.items():
        timings = ", ".join(f"{kind} p50 {p50[kind]:6.2f} ms" for kind in KINDS)
        print(f"{size:>7} models: {timings}")
    smallest, largest = results[args.sizes[0]], results[args.sizes[-1]]
    print(
        f"ratios p50({args.sizes[-1]}) / p50({args.sizes[0]}): "
        + ", ".join(f"{kind} {largest[kind] / smallest[kind]:.2f}" for kind in KINDS)
    )


if __name__ == "__main__":
    main()
