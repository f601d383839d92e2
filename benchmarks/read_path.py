"""What a page of models costs on top of the database read of the same page, and on top
of encoding its answer.

Two `modelci serve` (`benchmarks/hub.py`: no workers, one web process each) over one
embedded database: "memory", the first, with its read model on (the default
MODELCI_READ_MODEL_MB: pages answered from the process's memory) and "database", the
second, on the first one's database with it off (MODELCI_READ_MODEL_MB=0: every read
asks the database, the behaviour before the read model). They hold --models models, half
of them in one architecture, each profiled as `mlflow_registry.py` seeds them (a static
result and --dynamic-results dynamic ones); timing starts once the first one's read
model is serving with all of them (`/readyz`). The page is
`models(architecture: ..., first: 100)`; read, one request at a time, request by request
in turn (each GraphQL kind from both hubs, the order flipping each request), so that
whatever else the machine does weighs on all alike:
- database: PyMongo straight against the hub's embedded database, the same filter, sort
  (`_id` descending) and limit (`first + 1`) as a plain keyset page, documents decoded;
- GraphQL `nodes { id }`, ten scalar fields, and the client's full model selection (the
  request `ModelHub.get_models` sends, recorded from it), each a POST on one keep-alive
  connection with the JSON answer parsed;
- the client itself, `ModelHub.get_models(limit=100, architecture=...)`;
- the same page as a search, `models(where: ...)`, with the client's full selection (the
  client's own request for `get_models(limit=100, where=...)`): the same filter
  (`where: {architecture: {equals: ...}}`), the issue's shape (a prefix ignoring case, a
  metric threshold and a tag: every model of the architecture carries the tag), and an
  `or` of the filter and a branch that matches nothing; and PyMongo reading the second
  one's query (`model_query.search_query`) as the database row reads the first;
- the limit once the database is out of the path: `orjson.dumps` of the full-selection
  page's JSON answer (what the hub's view does last), and that with the `json.loads`
  the GraphQL rows' client does on top.
Each kind's p50 and p95 are the medians over --rounds of --requests; the last columns:
the database hub's p50 over the memory hub's, and each p50 over PyMongo's and over
orjson's.

    python benchmarks/read_path.py [--models 300] [--requests 50] [--rounds 5] [--dynamic-results 2]
                                   [--kept-models-mb N] [--quick]

With --profile OUT, py-spy samples the memory hub (every process, idle time left out)
while only full-selection pages are requested from it for --profile-seconds, and writes
its raw collapsed stacks to OUT.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx
import orjson
from hub import serve, wait_until_up
from mlflow_registry import (
    ARCHITECTURES,
    JSON,
    Raw,
    nearest_rank,
    recorded,
    seed_one,
    seeded,
)
from pymongo import DESCENDING, MongoClient

from modelci.client import ModelHub
from modelci.core.domain import ModelWhere
from modelci.server.embedded import free_port, running_database_url
from modelci.server.model_query import search_query
from modelci.server.settings import Settings

PAGE = 100
IDS = """query page($architecture: String, $first: Int!) {
  models(architecture: $architecture, first: $first) { nodes { id } }
}"""
SCALARS = """query page($architecture: String, $first: Int!) {
  models(architecture: $architecture, first: $first) {
    nodes { id architecture framework engine version dataset task creator createTime updateTime }
  }
}"""
# Searches that find the same page (the seeded metric is acc 0.76).
SEARCHES: dict[str, dict[str, Any]] = {
    "where =": {"architecture": {"equals": ARCHITECTURES[0]}},
    "where prefix+metric+tag": {
        "architecture": {"prefix": ARCHITECTURES[0][:3].upper()},
        "metrics": [{"name": "acc", "gt": 0.75}],
        "tags": [{"name": "team", "equals": "vision"}],
    },
    "where or": {
        "or": [
            {"architecture": {"equals": ARCHITECTURES[0]}},
            {"architecture": {"equals": ARCHITECTURES[1]}, "metrics": [{"name": "acc", "gt": 0.9}]},
        ]
    },
}
# In this order, each request of a round: the same page by argument and by search side
# by side. HUB_KINDS are read from each hub; the rest once.
HUB_KINDS = (
    "graphql ids",
    "graphql 10 scalars",
    "graphql full selection",
    *(f"graphql full, {name}" for name in SEARCHES),
    "client",
)
HUBS = ("memory", "database")
KINDS = (
    "database",
    *(f"{kind} [{hub}]" for kind in HUB_KINDS for hub in HUBS),
    "database, search",
    "orjson.dumps of the answer",
    "orjson.dumps + json.loads",
)


def seed_tagged(hub: ModelHub, index: int, dynamic_results: int) -> str:
    """A model as ``seed_one`` seeds it; those of the page's architecture tagged team=vision."""
    model_id = seed_one(hub, index, dynamic_results)
    if ARCHITECTURES[index % 2] == ARCHITECTURES[0]:
        hub.set_tag(model_id, "team", "vision")
    return model_id


def seed(url: str, models: int, dynamic_results: int) -> dict[str, dict[str, Any]]:
    """The models, and the client's own requests for a full page: by architecture, and
    each search."""
    seeded(
        lambda: ModelHub(url), lambda hub, index: seed_tagged(hub, index, dynamic_results), models
    )
    with ModelHub(url) as hub:
        requests = {
            "page": recorded(hub, lambda: hub.get_models(limit=PAGE, architecture=ARCHITECTURES[0]))
        }
        for name, where in SEARCHES.items():
            requests[name] = recorded(
                hub, lambda where=where: hub.get_models(limit=PAGE, where=where)
            )
        return requests


def readers(
    urls: dict[str, str], database_url: str, requests: dict[str, dict[str, Any]]
) -> dict[str, Callable[[], int]]:
    """Each kind of read of the page; each returns how many models it got."""
    client: MongoClient[dict[str, Any]] = MongoClient(database_url)
    models = client[Settings(_env_file=None).database]["models"]  # type: ignore[call-arg]
    variables = {"architecture": ARCHITECTURES[0], "first": PAGE}

    def database(query: dict[str, Any]) -> Callable[[], int]:
        def read() -> int:
            return len(list(models.find(query).sort("_id", DESCENDING).limit(PAGE + 1))[:PAGE])

        return read

    def graphql(raw: Raw, body: dict[str, Any]) -> Callable[[], int]:
        encoded = json.dumps(body).encode()

        def read() -> int:
            answer = raw.request("POST", "/graphql", encoded, JSON)
            if answer.get("errors"):
                raise RuntimeError(answer["errors"])
            return len(answer["data"]["models"]["nodes"])

        return read

    def of_hub(url: str) -> dict[str, Callable[[], int]]:
        raw = Raw(url)
        hub = ModelHub(url)
        return {
            "graphql ids": graphql(raw, {"query": IDS, "variables": variables}),
            "graphql 10 scalars": graphql(raw, {"query": SCALARS, "variables": variables}),
            "graphql full selection": graphql(raw, requests["page"]),
            "client": lambda: len(hub.get_models(limit=PAGE, architecture=ARCHITECTURES[0])),
            **{f"graphql full, {name}": graphql(raw, requests[name]) for name in SEARCHES},
        }

    # The page's answer as the hub gives it, the reference's input.
    answer = Raw(urls["memory"]).request(
        "POST", "/graphql", json.dumps(requests["page"]).encode(), JSON
    )

    def encoded() -> int:
        orjson.dumps(answer)
        return len(answer["data"]["models"]["nodes"])

    def round_trip() -> int:
        return len(json.loads(orjson.dumps(answer))["data"]["models"]["nodes"])

    search = ModelWhere.model_validate(SEARCHES["where prefix+metric+tag"])
    reads = {
        "database": database({"architecture": ARCHITECTURES[0]}),
        "database, search": database(search_query(search)),
        "orjson.dumps of the answer": encoded,
        "orjson.dumps + json.loads": round_trip,
    }
    for hub_name, url in urls.items():
        reads |= {f"{kind} [{hub_name}]": read for kind, read in of_hub(url).items()}
    return {kind: reads[kind] for kind in KINDS}


def measure(reads: dict[str, Callable[[], int]], requests: int) -> dict[str, list[float]]:
    """Every kind once a request, in KINDS' order, the hubs' order flipping each request."""
    latencies: dict[str, list[float]] = {kind: [] for kind in reads}
    flipped = [
        kind.replace("[memory]", "[database]")
        if "[memory]" in kind
        else kind.replace("[database]", "[memory]")
        for kind in reads
    ]
    for index in range(requests):
        for kind in reads if index % 2 == 0 else flipped:
            read = reads[kind]
            started = time.perf_counter()
            got = read()
            latencies[kind].append(time.perf_counter() - started)
            if got != PAGE:
                raise RuntimeError(f"{kind} read {got} models, not {PAGE}")
    return latencies


def wait_until_serving(url: str, models: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """Until the hub's read model serves, holding every seeded model."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        report: dict[str, Any] = httpx.get(f"{url}/readyz").json()["readModel"]
        if report["state"] == "serving" and report["models"] >= models:
            return report
        time.sleep(0.05)
    raise RuntimeError(f"the read model at {url} is not serving")


def profile(hub_pid: int, read: Callable[[], int], seconds: float, out: Path) -> None:
    """py-spy on the hub's processes while ``read`` runs back to back."""
    spy = subprocess.Popen(
        [
            *(str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(hub_pid)),
            *("--subprocesses", "--rate", "250", "--format", "raw", "-o", str(out)),
            *("--duration", str(int(seconds))),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # py-spy attaches
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    count = 0
    while not stop.is_set():
        read()
        count += 1
    spy.wait()
    print(f"profiled {count} full-selection pages in {seconds:g} s: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=300, help="half of them on the page's filter")
    parser.add_argument("--requests", type=int, default=50, help="of each kind, a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--dynamic-results", type=int, default=2, help="per model, with a static result (0: none)"
    )
    parser.add_argument(
        "--kept-models-mb",
        type=int,
        help="the hub's MODELCI_KEPT_MODELS_MB (0: every read validates its documents anew)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 200 models, 1 round of 5 requests"
    )
    parser.add_argument("--profile", type=Path, help="py-spy's raw stacks go here")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    args = parser.parse_args()
    if args.models < 2 * PAGE:
        parser.error(f"--models must be at least {2 * PAGE}: the page needs {PAGE} matches")

    if args.quick:
        args.models, args.requests, args.rounds, args.dynamic_results = 200, 5, 1, 1

    with tempfile.TemporaryDirectory() as folder:
        ports = {hub: free_port() for hub in HUBS}
        urls = {hub: f"http://127.0.0.1:{port}" for hub, port in ports.items()}
        kept = {} if args.kept_models_mb is None else {"kept_models_mb": str(args.kept_models_mb)}
        servers = [serve(Path(folder, "memory"), ports["memory"], **kept)]
        try:
            wait_until_up(urls["memory"])
            database_url = running_database_url(
                Settings(data_dir=Path(folder, "memory")).embedded_db_dir
            )
            if database_url is None:
                raise RuntimeError("the hub's embedded database does not answer")
            servers.append(
                serve(
                    Path(folder, "database"),
                    ports["database"],
                    read_model_mb="0",
                    mongodb_url=database_url,
                    **kept,
                )
            )
            wait_until_up(urls["database"])
            requests = seed(urls["memory"], args.models, args.dynamic_results)
            held = wait_until_serving(urls["memory"], args.models)
            reads = readers(urls, database_url, requests)
            measure(reads, 5)  # warm-up
            rounds = [measure(reads, args.requests) for _ in range(args.rounds)]
            held = httpx.get(f"{urls['memory']}/readyz").json()["readModel"]
            if args.profile:
                profile(
                    servers[0].pid,
                    reads["graphql full selection [memory]"],
                    args.profile_seconds,
                    args.profile,
                )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait()

    def median_of(kind: str, percent: float) -> float:
        return statistics.median(nearest_rank(sorted(r[kind]), percent) for r in rounds)

    database = median_of("database", 50)
    encoding = median_of("orjson.dumps of the answer", 50)
    print(
        f"\n| page of {PAGE} models, {args.models} stored | memory p50 / p95 (ms) "
        "| database p50 / p95 (ms) | database / memory p50 | memory p50 / PyMongo "
        "| memory p50 / orjson |"
    )
    print("|---|---|---|---|---|---|")
    single = [kind for kind in KINDS if "[" not in kind]
    for kind in [*single[:1], *HUB_KINDS, *single[1:]]:
        if kind in HUB_KINDS:
            memory, on_database = f"{kind} [memory]", f"{kind} [database]"
            p50, p50_database = median_of(memory, 50), median_of(on_database, 50)
            print(
                f"| {kind} | {p50 * 1e3:.2f} / {median_of(memory, 95) * 1e3:.2f} "
                f"| {p50_database * 1e3:.2f} / {median_of(on_database, 95) * 1e3:.2f} "
                f"| **{p50_database / p50:.1f}×** | {p50 / database:.2f} | {p50 / encoding:.1f} |"
            )
        else:
            p50 = median_of(kind, 50)
            print(
                f"| {kind} | {p50 * 1e3:.2f} / {median_of(kind, 95) * 1e3:.2f} | | "
                f"| {p50 / database:.2f} | {p50 / encoding:.1f} |"
            )
    spreads = [
        max(nearest_rank(sorted(r[kind]), 50) for r in rounds)
        / min(nearest_rank(sorted(r[kind]), 50) for r in rounds)
        for kind in KINDS
    ]
    print(
        f"\nMedians of {args.rounds} rounds of {args.requests} requests of each kind, in turn. "
        f"Noise: a kind's slowest round p50 / fastest, up to {max(spreads):.2f}. The memory "
        f"hub's /readyz readModel: {held['models']} models, {held['bytes'] / 2**20:.1f} MB, "
        f"reads {held['reads']}."
    )


if __name__ == "__main__":
    main()
