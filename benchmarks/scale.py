"""Scale: get-by-id, a filtered list, the first page of all models and a page filtered by
measured performance (`models(profile: …)`) at 1 k, 10 k and 100 k registered models,
read from each web process's read model (memory) and from the database.

Models are bulk-loaded as metadata (documents as the registry writes them, no weight
bytes, each with three dynamic results: CPU at batch 1 and 8, a GPU at batch 32, their
latencies spread over the models) into the embedded database (or
MODELCI_MONGODB_URL's, into a fresh database).
Their ids carry their creation time, as every ObjectId does: by default one model a
minute, going back from now (100 k models: 69 days of history), and with
`--minutes-apart 0` all created in the same instant, the worst case for a database
that reads every match before applying a limit.

The queries go through the whole app (GraphQL, in-process ASGI), in two or more apps
over the one database side by side: one with its read model off (MODELCI_READ_MODEL_MB
0: every read asks the database, the behaviour before the read model) and one for each
--read-model-mb (the default, 256, is the hub's). The bulk load runs in a thread while
the apps go on, their read models following the change stream as it lands. After it,
before any timing, the benchmark waits until each read model has applied the load (the
seconds it took are printed): a read carrying the load's operation time
(`x-modelci-read-after`, as a client that made the write sends it) is answered from
memory (`/readyz` readModel.state "serving" and its reads.memory count going up). The
apps take turns in rounds (--rounds, the order flipping each round), each kind a phase
of its own; each kind's p50 is the median of its rounds'.
As the reference, once a size, the same reads go straight to the database with PyMongo
(`find_one` by id; `find` with the filter, `_id` descending and the limit).
Prints p50 at each size and the ratios p50(largest) / p50(smallest).

With --startup N, after the last size the embedded database is stopped and `modelci
serve` is started on that data directory N times for each read-model budget and with the
read model off, in turns: the time from starting the command to `/readyz` answering 200,
and to readModel.state "serving", with readModel.loadSeconds, models, bytes and the
process's resident memory then.

    python benchmarks/scale.py [--sizes 1000 10000 100000] [--requests 200]
                               [--minutes-apart 1] [--read-model-mb 256 ...] [--rounds 3]
                               [--database-requests 10] [--startup 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from pymongo import MongoClient

from modelci.core.domain import (
    READ_AFTER_HEADER,
    DynamicProfileResult,
    InfoTuple,
    ProfileFilter,
    ProfileLatency,
    ProfileMemory,
    ProfileThroughput,
    utcnow,
)
from modelci.server.app import create_app
from modelci.server.embedded import EmbeddedDatabase, free_port
from modelci.server.model_query import profile_condition
from modelci.server.read_model import time_text
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
APP_KINDS = ("get", "list", "all", "profile")
DB_KINDS = ("db get", "db list", "db all", "db profile")
WARM_UP = 50
CATCH_UP_TIMEOUT_S = 1800.0


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


def workload(ids: list[str], requests: int) -> tuple[list[str], list[dict[str, str]]]:
    """The same ids and filters for every app and the database: the gets' ids, the lists'
    filters (an architecture and its task: 1 % of the models)."""
    rng = random.Random(0)
    chosen = [rng.choice(ids) for _ in range(requests)]
    filters = [
        {"architecture": f"arch-{index % ARCHITECTURES}", "task": TASKS[index % len(TASKS)]}
        for index in range(requests)
    ]
    return chosen, filters


async def app_samples(
    client: httpx.AsyncClient, chosen: list[str], filters: list[dict[str, str]]
) -> dict[str, list[float]]:
    """Each query through one app, each kind as its own phase: interleaved, a slow list
    left the database busy enough to slow the get that followed it."""
    samples: dict[str, list[float]] = {kind: [] for kind in APP_KINDS}
    for model_id in chosen:
        started = time.perf_counter()
        response = await client.post("/graphql", json={"query": GET, "variables": {"id": model_id}})
        samples["get"].append(time.perf_counter() - started)
        assert response.json()["data"]["model"]["id"] == model_id
    for where in filters:
        variables = {"a": where["architecture"], "t": where["task"]}
        started = time.perf_counter()
        response = await client.post("/graphql", json={"query": LIST, "variables": variables})
        samples["list"].append(time.perf_counter() - started)
        assert response.json()["data"]["models"]["nodes"]
    for _ in filters:
        started = time.perf_counter()
        response = await client.post("/graphql", json={"query": ALL})
        samples["all"].append(time.perf_counter() - started)
        assert response.json()["data"]["models"]["pageInfo"]["hasNextPage"]
    for _ in filters:
        started = time.perf_counter()
        response = await client.post(
            "/graphql", json={"query": PROFILE, "variables": {"p": MEASURED}}
        )
        samples["profile"].append(time.perf_counter() - started)
        assert response.json()["data"]["models"]["pageInfo"]["hasNextPage"]
    return samples


def database_samples(
    collection: Any, chosen: list[str], filters: list[dict[str, str]], database_requests: int
) -> dict[str, list[float]]:
    """The reference: the same reads straight to the database with PyMongo."""
    samples: dict[str, list[float]] = {kind: [] for kind in DB_KINDS}
    for model_id in chosen:
        started = time.perf_counter()
        collection.find_one({"_id": ObjectId(model_id)})
        samples["db get"].append(time.perf_counter() - started)
    for where in filters:
        started = time.perf_counter()
        collection.find(where).sort("_id", -1).limit(11).to_list()
        samples["db list"].append(time.perf_counter() - started)
    # On the embedded database this plain query reads every model (5 to 15 s at 100 k),
    # so it runs a few times only.
    for _ in range(min(len(chosen), database_requests)):
        started = time.perf_counter()
        collection.find({}).sort("_id", -1).limit(11).to_list()
        samples["db all"].append(time.perf_counter() - started)
    condition = profile_condition(
        ProfileFilter(device="cpu", batch=8, max_p99_latency=MEASURED["maxP99Latency"])
    )
    for _ in range(min(len(chosen), database_requests)):  # reads every match, as "db all"
        started = time.perf_counter()
        collection.find(condition).sort("_id", -1).limit(11).to_list()
        samples["db profile"].append(time.perf_counter() - started)
    return samples


async def read_model_of(client: httpx.AsyncClient) -> dict[str, Any]:
    """What /readyz says of the app's read model; a "not ready" (the database did not
    answer its ping) is printed and asked again, a few times."""
    for _ in range(20):
        response = await client.get("/readyz")
        if response.status_code == 200:
            answer: dict[str, Any] = response.json()["readModel"]
            return answer
        print(f"  /readyz {response.status_code}: {response.json()}", flush=True)
        await asyncio.sleep(0.5)
    raise RuntimeError("the app stays not ready")


async def caught_up(client: httpx.AsyncClient, newest_id: str, written: Any) -> float:
    """Seconds until this app's read model answers a read that must see the bulk load
    (its operation time carried as a client that made it would) from memory."""
    started = time.perf_counter()
    header = {READ_AFTER_HEADER: time_text(written)}
    while time.perf_counter() - started < CATCH_UP_TIMEOUT_S:
        before = await read_model_of(client)
        if before["state"] == "serving":
            response = await client.post(
                "/graphql", json={"query": GET, "variables": {"id": newest_id}}, headers=header
            )
            assert response.json()["data"]["model"]["id"] == newest_id
            after = await read_model_of(client)
            if after["reads"].get("memory", 0) > before["reads"].get("memory", 0):
                return time.perf_counter() - started
        else:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the read model did not catch up in {CATCH_UP_TIMEOUT_S:g} s")


def p50(rounds: list[list[float]]) -> float:
    """The median of the rounds' p50s, in ms."""
    return statistics.median(statistics.median(samples) for samples in rounds) * 1e3


def spread(rounds: list[list[float]]) -> float:
    p50s = [statistics.median(samples) for samples in rounds]
    return max(p50s) / min(p50s)


def app_label(megabytes: int) -> str:
    return f"memory {megabytes} MB" if megabytes else "database"


async def measure(
    url: str, settings: Settings, args: argparse.Namespace
) -> dict[int, dict[str, Any]]:
    """At each size: each app's p50 of each kind (the medians over the rounds), the
    reference's, and how long each read model took to apply the bulk load."""
    budgets = [*args.read_model_mb, 0]
    apps = {
        app_label(megabytes): create_app(
            settings.model_copy(update={"read_model_mb": megabytes}), mongodb_url=url
        )
        for megabytes in budgets
    }
    results: dict[int, dict[str, Any]] = {}
    ids: list[str] = []
    with MongoClient(url) as mongo, mongo.start_session() as session:
        collection = mongo[settings.database][MODELS]
        async with contextlib.AsyncExitStack() as stack:
            clients: dict[str, httpx.AsyncClient] = {}
            for label, app in apps.items():
                await stack.enter_async_context(app.router.lifespan_context(app))  # indexes
                transport = httpx.ASGITransport(app=app)
                clients[label] = await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
                )
            for size in args.sizes:
                started = time.perf_counter()
                for start in range(len(ids), size, 5000):
                    batch = [
                        document(index, args.minutes_apart)
                        for index in range(start, min(size, start + 5000))
                    ]
                    # In a thread: the apps go on meanwhile, their read models following
                    # the stream as the load lands (and their connections are not left
                    # idle long enough for the embedded database to close them: 300 s).
                    await asyncio.to_thread(
                        collection.insert_many, batch, ordered=False, session=session
                    )
                    ids += [str(doc["_id"]) for doc in batch]
                print(f"loaded {size} models ({time.perf_counter() - started:.1f} s)", flush=True)
                # Each read model from the same instant, all at once.
                following = [label for label in apps if label != "database"]
                seconds = await asyncio.gather(
                    *(
                        caught_up(clients[label], ids[0], session.operation_time)
                        for label in following
                    )
                )
                result: dict[str, Any] = {
                    "catch up": dict(zip(following, seconds, strict=True)),
                    "read model": {
                        label: await read_model_of(clients[label]) for label in following
                    },
                }
                for label in following:
                    print(
                        f"  {label}: read model applied the load {result['catch up'][label]:.1f} s "
                        "after it ended",
                        flush=True,
                    )
                chosen, filters = workload(ids, args.requests)
                # Untimed: the database settles after a bulk load, each app warms up.
                for client in clients.values():
                    for model_id in chosen[:WARM_UP]:
                        await client.post(
                            "/graphql", json={"query": GET, "variables": {"id": model_id}}
                        )
                rounds: dict[str, dict[str, list[list[float]]]] = {
                    label: {kind: [] for kind in APP_KINDS} for label in apps
                }
                for round_index in range(args.rounds):
                    order = list(apps) if round_index % 2 == 0 else list(apps)[::-1]
                    for label in order:
                        samples = await app_samples(clients[label], chosen, filters)
                        for kind in APP_KINDS:
                            rounds[label][kind].append(samples[kind])
                reference = database_samples(collection, chosen, filters, args.database_requests)
                result["apps"] = {
                    label: {kind: p50(rounds[label][kind]) for kind in APP_KINDS} for label in apps
                }
                result["spread"] = max(
                    spread(rounds[label][kind]) for label in apps for kind in APP_KINDS
                )
                result["database"] = {
                    kind: statistics.median(samples) * 1e3 for kind, samples in reference.items()
                }
                for label in result["read model"]:
                    # Who answered: "memory", or why the database did ("not_held": past
                    # the budget).
                    reads = (await read_model_of(clients[label]))["reads"]
                    print(f"  {label}: reads answered by {reads}", flush=True)
                results[size] = result
    return results


def resident_mb(pid: int) -> float:
    """Resident memory of a process and its children (the embedded database's included)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != pid and int(stat.parent.name) != pid:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def startup(
    data_dir: Path, settings: Settings, budgets: list[int], repeats: int, external: str | None
) -> list[dict[str, Any]]:
    """`modelci serve` started on the loaded database, in turns: seconds to /readyz 200
    and to the read model serving, and what it then says of itself."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hub import serve

    runs = []
    for repeat in range(repeats):
        order = budgets if repeat % 2 == 0 else budgets[::-1]
        for megabytes in order:
            port = free_port()
            options = {"database": settings.database, "read_model_mb": str(megabytes)}
            if external:
                options["mongodb_url"] = external
            started = time.perf_counter()
            server = serve(data_dir, port, **options)
            ready = serving = None
            report: dict[str, Any] = {}
            try:
                while time.perf_counter() - started < CATCH_UP_TIMEOUT_S:
                    try:
                        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                    except httpx.HTTPError:
                        response = None
                    now = time.perf_counter() - started
                    if response is not None and response.status_code == 200:
                        ready = ready or now
                        report = response.json()["readModel"]
                        if report["state"] in ("serving", "off"):
                            serving = now if report["state"] == "serving" else None
                            break
                    time.sleep(0.05)
                else:
                    raise RuntimeError("the hub did not come up")
                rss = resident_mb(server.pid)
            finally:
                server.terminate()
                server.wait()
            runs.append({"mb": megabytes, "ready": ready, "serving": serving, "rss": rss, **report})
            print(
                f"  serve, {app_label(megabytes)}: ready {ready:.1f} s, serving "
                f"{'-' if serving is None else f'{serving:.1f} s'}, {rss:.0f} MB resident",
                flush=True,
            )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--requests", type=int, default=200, help="of each kind, a round")
    parser.add_argument("--minutes-apart", type=float, default=1.0)
    parser.add_argument(
        "--read-model-mb",
        type=int,
        nargs="+",
        default=[256],
        help="an app with its read model on for each budget (beside one with it off)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database-requests",
        type=int,
        default=10,
        help="of the reference's all and profile reads, which read every match there",
    )
    parser.add_argument(
        "--startup", type=int, default=0, help="times `modelci serve` is started on the last size"
    )
    args = parser.parse_args()
    if 0 in args.read_model_mb:
        parser.error("--read-model-mb: the app with the read model off is always there")
    external = os.environ.get("MODELCI_MONGODB_URL")  # a real MongoDB, when given
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(  # type: ignore[call-arg]
            data_dir=Path(folder), workers=0, database=f"scale_{ObjectId()}", _env_file=None
        )
        if external:
            results = asyncio.run(measure(external, settings, args))
        else:
            with EmbeddedDatabase(settings.embedded_db_dir) as db:
                results = asyncio.run(measure(db.url, settings, args))
        started = (
            startup(Path(folder), settings, [*args.read_model_mb, 0], args.startup, external)
            if args.startup
            else []
        )
    report(results, started, args)


def report(
    results: dict[int, dict[str, Any]], started: list[dict[str, Any]], args: argparse.Namespace
) -> None:
    labels = [app_label(megabytes) for megabytes in [*args.read_model_mb, 0]]
    print()
    print(
        "| p50 (ms) | "
        + " | ".join(f"{kind}: {' / '.join(labels)}" for kind in APP_KINDS)
        + " | database alone: "
        + " | ".join(kind.removeprefix("db ") for kind in DB_KINDS)
        + " |"
    )
    print("|---" * (1 + len(APP_KINDS) + len(DB_KINDS)) + "|")
    for size, result in results.items():
        cells = [
            " / ".join(f"{result['apps'][label][kind]:.2f}" for label in labels)
            for kind in APP_KINDS
        ]
        cells += [f"{result['database'][kind]:.2f}" for kind in DB_KINDS]
        print(f"| {size} models | " + " | ".join(cells) + " |")
    smallest, largest = results[args.sizes[0]], results[args.sizes[-1]]
    cells = [
        " / ".join(
            f"{largest['apps'][label][kind] / smallest['apps'][label][kind]:.2f}"
            for label in labels
        )
        for kind in APP_KINDS
    ]
    cells += [f"{largest['database'][kind] / smallest['database'][kind]:.2f}" for kind in DB_KINDS]
    print(f"| p50({args.sizes[-1]}) / p50({args.sizes[0]}) | " + " | ".join(cells) + " |")
    for size, result in results.items():
        gains = ", ".join(
            f"{kind} "
            + " / ".join(
                f"{result['apps']['database'][kind] / result['apps'][label][kind]:.1f}×"
                for label in labels[:-1]
            )
            for kind in APP_KINDS
        )
        held = "; ".join(
            f"{label}: {report['models']} models held, {report['bytes'] / 2**20:.0f} MB, "
            f"complete {report['complete']}, the load applied in {result['catch up'][label]:.1f} s"
            for label, report in result["read model"].items()
        )
        print(f"{size} models: database p50 / memory p50: {gains}; {held}")
    print(
        f"Medians of {args.rounds} round(s) of {args.requests} requests of each kind, apps in "
        f"turn; noise (a cell's slowest round p50 / fastest) up to "
        f"{max(result['spread'] for result in results.values()):.2f}."
    )
    if started:
        print(
            f"\n| `modelci serve`, {args.sizes[-1]} models | ready (s) | serving (s) "
            "| loadSeconds | models held | bytes (MB) | resident (MB) |"
        )
        print("|---|---|---|---|---|---|---|")
        for run in started:
            serving = "-" if run["serving"] is None else f"{run['serving']:.1f}"
            load = run.get("loadSeconds")
            print(
                f"| {app_label(run['mb'])} | {run['ready']:.1f} | {serving} "
                f"| {'-' if load is None else f'{load:.1f}'} | {run.get('models', '-')} "
                f"| {run.get('bytes', 0) / 2**20:.0f} | {run['rss']:.0f} |"
            )


if __name__ == "__main__":
    main()
