"""What users get from a model registry, side by side: ModelCI Hub against MLflow's.

Both servers run on this machine, on loopback, started here:
- ours: `modelci serve` through `benchmarks/hub.py` (embedded database, no profiling
  workers, `--processes` web processes, 2 by default: one a core), twice by default
  (`--read-model both`): with its read model on (the default, MODELCI_READ_MODEL_MB
  256: reads answered from each web process's memory) and, on the first one's database,
  with it off (MODELCI_READ_MODEL_MB=0: every read asks the database, the behaviour
  before the read model); `--read-model memory` or `database` starts one of them only;
- MLflow: `mlflow server` with its defaults (SQLite backend store, artifacts served by the
  tracking server, 4 worker processes).

Each system is driven by a process of its own running that system's Python client, so
the MLflow side runs in MLflow's own environment (MLflow pins graphql-core 3.2, which
this project cannot install beside Strawberry): `MLFLOW_BIN` names its `mlflow` command,
and its `python` beside it runs the MLflow driver.

Operations, full objects on both sides:
- get: ours `ModelHub.get_by_id` (the client's full model selection: metadata, IO shapes,
  metrics, weight, static and dynamic profiles); MLflow `MlflowClient.get_registered_model`
  (the registered model with its tags and its latest versions with theirs);
- search: ours `ModelHub.get_models(limit=100, architecture=...)`, MLflow
  `search_registered_models("tags.architecture = ...", max_results=100)`; --models are
  seeded on each side in two architectures, so a search matches half of them and returns
  100 full objects;
- register, with a 64 KiB weight: ours `ModelHub.register_model` (no conversion); MLflow
  creates the registered model, a run, uploads the weight as the run's artifact and
  creates the model version, all with tags (what `mlflow.register_model` does);
and the same over raw HTTP (one keep-alive `http.client` connection a thread, the JSON
parsed): ours POSTs the client's own GraphQL request (recorded from it), MLflow calls its
REST API (`registered-models/get`, `registered-models/search`, and the four requests of a
registration).

Concurrency 1 and 16: threads, each with its own client or connection. Each cell runs
--seconds (and at least --min-requests), after one untimed request a thread; the
systems alternate cell by cell, in --rounds rounds (the order flips each round). Printed:
a Markdown table of each cell's median over rounds of p50 and p95 (nearest rank), and the
ratios MLflow / ours (each of ours) and, with both of ours, ours from the database / ours
from memory.

    python -m venv /tmp/mlflow && /tmp/mlflow/bin/pip install mlflow
    MLFLOW_BIN=/tmp/mlflow/bin/mlflow python benchmarks/mlflow_registry.py [--quick]
        [--read-model both|memory|database] [--operations get search]
"""

from __future__ import annotations

# Only the standard library at module level: the MLflow driver imports this file in
# MLflow's environment, where neither modelci nor httpx is installed.
import argparse
import http.client
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

WEIGHT = os.urandom(64 * 1024)
ARCHITECTURES = ("resnet", "vit")  # the seeded models, half each
REGISTERED = "registered"  # the architecture of models registered while measuring
OPERATIONS = ("get", "search", "register")
INTERFACES = ("client", "http")
# Ours with its read model on, ours with it off, MLflow.
SYSTEMS = ("modelci", "modelci-db", "mlflow")
LABELS = {"modelci": "ours (memory)", "modelci-db": "ours (database)", "mlflow": "MLflow"}
SEARCH_RESULTS = 100


def nearest_rank(ordered: list[float], percent: float) -> float:
    return ordered[max(0, int(-(-len(ordered) * percent // 100)) - 1)]


# Both drivers: threads, each with its own client or connection


def run_cell(
    open_state: Callable[[], Any],
    operation: Callable[[Any, int], None],
    concurrency: int,
    seconds: float,
    min_requests: int,
) -> dict[str, Any]:
    """``concurrency`` threads, each with its own state, call ``operation`` until the
    time is up and at least ``min_requests`` were made; one untimed call a thread first."""
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    clock = {"started": 0.0, "deadline": 0.0}

    def go() -> None:  # run by the barrier once every thread is ready, before it opens
        clock["started"] = time.perf_counter()
        clock["deadline"] = clock["started"] + seconds

    ready = threading.Barrier(concurrency, action=go)

    def user() -> None:
        state = None
        try:
            state = open_state()
            operation(state, next(counter))  # connects, warms the client up
        except Exception as error:  # reported, and the cell is refused
            errors.append(repr(error))
        ready.wait()
        if errors:
            return
        try:
            while time.perf_counter() < clock["deadline"] or len(latencies) < min_requests:
                index = next(counter)
                started = time.perf_counter()
                operation(state, index)
                latencies.append(time.perf_counter() - started)  # atomic under the GIL
        except Exception as error:
            errors.append(repr(error))
        finally:
            close = getattr(state, "close", None)
            if close is not None:
                close()

    threads = [threading.Thread(target=user) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - clock["started"]
    return {"latencies": latencies, "elapsed": elapsed, "errors": errors[:3]}


class Raw:
    """One keep-alive HTTP/1.1 connection; answers parsed as JSON."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        self.connection.request(method, path, body, headers or {})
        response = self.connection.getresponse()
        raw = response.read()
        if response.status >= 400:
            raise RuntimeError(f"HTTP {response.status} {path}: {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def close(self) -> None:
        self.connection.close()


# Ours: ModelHub and its own requests replayed raw


def timing(p50: float) -> dict[str, float]:
    return {"avg": p50, "p50": p50, "p95": p50 * 1.5, "p99": p50 * 2}


def model_fields(architecture: str, version: int) -> dict[str, Any]:
    return {
        "architecture": architecture,
        "framework": "PyTorch",
        "engine": "NONE",
        "version": version,
        "dataset": "ImageNet",
        "task": "Image_Classification",
        "inputs": [{"name": "input", "shape": [-1, 3, 224, 224], "dtype": "TYPE_FP32"}],
        "outputs": [{"name": "output", "shape": [-1, 1000], "dtype": "TYPE_FP32"}],
        "metric": [{"name": "acc", "value": 0.76}],
    }


STATIC = {"parameters": 25_557_032, "flops": 8_178_000_000, "memory": 102_228_128}
STATIC |= {"mread": 1, "mwrite": 2, "mrw": 3, "macs": 4_089_000_000}


def dynamic(batch: int) -> dict[str, Any]:
    return {
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
            "inference_throughput": 100.0 * batch,
            "postprocess_throughput": 1000.0,
        },
    }


def seed_one(hub: Any, index: int, dynamic_results: int) -> str:
    """A model as the hub keeps one once profiled: a static result, and dynamic results
    at batch 1, 2, 4, ... (``dynamic_results`` of them; 0: a model just registered)."""
    fields = model_fields(ARCHITECTURES[index % 2], index + 1)
    model_id: str = hub.register_model(WEIGHT, convert=False, **fields).id
    if dynamic_results:
        hub.register_static_profiling_result(model_id, STATIC)
    for power in range(dynamic_results):
        hub.register_dynamic_profiling_result(model_id, dynamic(2**power))
    return model_id


class Ours:
    """The hub through ``modelci.client.ModelHub``, and the same requests raw."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ids: list[str] = []
        self.versions = itertools.count(1)  # each registration a new model key
        self.requests: dict[str, dict[str, Any]] = {}

    def hub(self) -> Any:
        from modelci.client import ModelHub

        return ModelHub(self.url)

    def seed(self, models: int, dynamic_results: int) -> dict[str, Any]:
        """``models`` models, half in each architecture; records the client's own
        requests for the raw side."""
        self.ids = seeded(
            self.hub, lambda hub, index: seed_one(hub, index, dynamic_results), models
        )
        return self.adopt(self.ids)

    def adopt(self, ids: list[str]) -> dict[str, Any]:
        """These models (seeded through another hub on the same database) are the ones
        read; records the client's own requests for the raw side."""
        self.ids = ids
        with self.hub() as hub:
            self.requests["get"] = recorded(hub, lambda: hub.get_by_id(self.ids[0]))
            self.requests["search"] = recorded(
                hub, lambda: hub.get_models(limit=SEARCH_RESULTS, architecture=ARCHITECTURES[0])
            )
            self.requests["register"] = recorded(hub, lambda: self.client_register(hub, 0))
            found = hub.get_models(limit=SEARCH_RESULTS, architecture=ARCHITECTURES[0])
            got = hub.get_by_id(self.ids[0])
        return {
            "search results": len(found),
            "dynamic results in a get": len(got.profile_result.dynamic_results),
            "get bytes (raw)": len(json.dumps(self.http_post(Raw(self.url), "get", 0))),
            "search bytes (raw)": len(json.dumps(self.http_post(Raw(self.url), "search", 0))),
        }

    # client

    def client_get(self, hub: Any, index: int) -> None:
        model = hub.get_by_id(self.ids[index % len(self.ids)])
        assert model.profile_result is not None

    def client_search(self, hub: Any, index: int) -> None:
        found = hub.get_models(limit=SEARCH_RESULTS, architecture=ARCHITECTURES[index % 2])
        assert len(found) == min(SEARCH_RESULTS, len(self.ids) // 2)

    def client_register(self, hub: Any, index: int) -> None:
        fields = model_fields(REGISTERED, next(self.versions))
        hub.register_model(WEIGHT, convert=False, **fields)

    # raw HTTP: the client's own request bodies

    def http_post(self, raw: Raw, operation: str, index: int) -> Any:
        request = self.requests[operation]
        variables = dict(request["variables"])
        if operation == "get":
            variables["id"] = self.ids[index % len(self.ids)]
        elif operation == "search":
            variables["architecture"] = ARCHITECTURES[index % 2]
        body = {**request, "variables": variables}
        answer = raw.request("POST", "/graphql", json.dumps(body).encode(), JSON)
        if answer.get("errors"):
            raise RuntimeError(answer["errors"])
        return answer

    def http_get(self, raw: Raw, index: int) -> None:
        self.http_post(raw, "get", index)

    def http_search(self, raw: Raw, index: int) -> None:
        answer = self.http_post(raw, "search", index)
        assert len(answer["data"]["models"]["nodes"]) == min(SEARCH_RESULTS, len(self.ids) // 2)

    def http_register(self, raw: Raw, index: int) -> None:
        request = self.requests["register"]
        variables = {**request["variables"], "weight": None}
        variables["input"] = {**variables["input"], "version": next(self.versions)}
        boundary = uuid.uuid4().hex
        operations = json.dumps({**request, "variables": variables})
        body = (
            (
                f'--{boundary}\r\ncontent-disposition: form-data; name="operations"\r\n\r\n'
                f"{operations}\r\n"
                f'--{boundary}\r\ncontent-disposition: form-data; name="map"\r\n\r\n'
                '{"0": ["variables.weight"]}\r\n'
                f'--{boundary}\r\ncontent-disposition: form-data; name="0"; filename="w.bin"\r\n'
                "content-type: application/octet-stream\r\n\r\n"
            ).encode()
            + WEIGHT
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {
            "content-type": f"multipart/form-data; boundary={boundary}",
            "apollo-require-preflight": "true",
        }
        answer = raw.request("POST", "/graphql", body, headers)
        if answer.get("errors"):
            raise RuntimeError(answer["errors"])


JSON = {"content-type": "application/json"}


def recorded(hub: Any, call: Callable[[], Any]) -> dict[str, Any]:
    """The JSON body the client sends for ``call`` (an upload's variable left as None)."""
    seen: dict[str, Any] = {}
    execute = hub.api.execute

    def recording(
        query: str, operation_name: str | None = None, variables: Any = None, **kwargs: Any
    ) -> Any:
        from modelci.transport import is_unset, json_ready

        plain = {
            key: json_ready(value)
            for key, value in (variables or {}).items()
            if not is_unset(value) and key != "weight"
        }
        seen.update(query=query, operationName=operation_name, variables=plain)
        return execute(query, operation_name, variables, **kwargs)

    hub.api.execute = recording
    try:
        call()
    finally:
        del hub.api.execute  # back to the class's method
    return seen


def seeded(open_state: Callable[[], Any], one: Callable[[Any, int], str], models: int) -> list[str]:
    """``one(state, index)`` for each index, on 4 threads; the results in index order."""
    results: dict[int, str] = {}
    indexes = iter(range(models))

    def worker() -> None:
        state = open_state()
        for index in indexes:  # next() on a shared iterator is atomic under the GIL
            results[index] = one(state, index)
        close = getattr(state, "close", None)
        if close is not None:
            close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(results) != models:
        raise RuntimeError(f"seeded {len(results)} of {models}")
    return [results[index] for index in range(models)]


# MLflow: MlflowClient and its REST API


class MLflow:
    """MLflow's registry through ``mlflow.MlflowClient``, and its REST API raw."""

    api = "/api/2.0/mlflow"

    def __init__(self, url: str) -> None:
        self.url = url
        self.names: list[str] = []
        self.experiment = ""
        folder = tempfile.mkdtemp(prefix="mlflow-bench-")
        self.weight_file = Path(folder, "w.bin")
        self.weight_file.write_bytes(WEIGHT)

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)

    def seed(self, models: int, dynamic_results: int) -> dict[str, Any]:
        self.experiment = self.client().create_experiment(f"bench-{uuid.uuid4().hex[:8]}")
        self.names = seeded(
            self.client,
            lambda client, index: self.register(client, ARCHITECTURES[index % 2]),
            models,
        )
        client = self.client()
        found = client.search_registered_models(
            f"tags.architecture = '{ARCHITECTURES[0]}'", max_results=SEARCH_RESULTS
        )
        got = client.get_registered_model(self.names[0])
        raw = Raw(self.url)
        return {
            "search results": len(found),
            "versions and tags in a get": f"{len(got.latest_versions)}, {len(got.tags)}"
            f" + {len(got.latest_versions[0].tags)}",
            "get bytes (raw)": len(json.dumps(self.raw_get(raw, 0))),
            "search bytes (raw)": len(json.dumps(self.raw_search(raw, 0))),
        }

    def tags(self, architecture: str) -> dict[str, str]:
        fields = model_fields(architecture, 1)
        return {key: str(fields[key]) for key in ("architecture", "framework", "engine", "task")}

    def register(self, client: Any, architecture: str) -> str:
        """What ``mlflow.register_model`` of a logged model amounts to: registered model,
        run, the weight as the run's artifact, model version."""
        name = f"model-{uuid.uuid4().hex[:12]}"
        tags = self.tags(architecture)
        client.create_registered_model(name, tags=tags)
        run = client.create_run(self.experiment)
        client.log_artifact(run.info.run_id, str(self.weight_file), "model")
        client.create_model_version(
            name,
            f"{run.info.artifact_uri}/model",
            run.info.run_id,
            tags={**tags, "acc": "0.76", "dataset": "ImageNet"},
        )
        return name

    # client

    def client_get(self, client: Any, index: int) -> None:
        model = client.get_registered_model(self.names[index % len(self.names)])
        assert model.latest_versions

    def client_search(self, client: Any, index: int) -> None:
        found = client.search_registered_models(
            f"tags.architecture = '{ARCHITECTURES[index % 2]}'", max_results=SEARCH_RESULTS
        )
        assert len(found) == min(SEARCH_RESULTS, len(self.names) // 2)

    def client_register(self, client: Any, index: int) -> None:
        self.register(client, REGISTERED)

    # raw HTTP: the REST API

    def raw_get(self, raw: Raw, index: int) -> Any:
        name = self.names[index % len(self.names)]
        return raw.request("GET", f"{self.api}/registered-models/get?" + urlencode({"name": name}))

    def raw_search(self, raw: Raw, index: int) -> Any:
        query = urlencode(
            {
                "filter": f"tags.architecture = '{ARCHITECTURES[index % 2]}'",
                "max_results": SEARCH_RESULTS,
            }
        )
        return raw.request("GET", f"{self.api}/registered-models/search?{query}")

    def http_get(self, raw: Raw, index: int) -> None:
        assert self.raw_get(raw, index)["registered_model"]["latest_versions"]

    def http_search(self, raw: Raw, index: int) -> None:
        found = self.raw_search(raw, index)["registered_models"]
        assert len(found) == min(SEARCH_RESULTS, len(self.names) // 2)

    def http_register(self, raw: Raw, index: int) -> None:
        name = f"model-{uuid.uuid4().hex[:12]}"
        tags = self.tags(REGISTERED)
        tag_list = [{"key": key, "value": value} for key, value in tags.items()]
        post = lambda path, body: raw.request(  # noqa: E731
            "POST", f"{self.api}/{path}", json.dumps(body).encode(), JSON
        )
        post("registered-models/create", {"name": name, "tags": tag_list})
        run = post("runs/create", {"experiment_id": self.experiment})["run"]["info"]
        path = f"{self.experiment}/{run['run_id']}/artifacts/model/w.bin"
        raw.request("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{path}", WEIGHT)
        post(
            "model-versions/create",
            {
                "name": name,
                "run_id": run["run_id"],
                "tags": [*tag_list, {"key": "acc", "value": "0.76"}],
                "source": f"{run['artifact_uri']}/model",
            },
        )


# The drivers: one process a system, commands on stdin, answers on stdout


def drive(system: str, url: str) -> None:
    ours = system.startswith("modelci")
    side: Any = Ours(url) if ours else MLflow(url)
    if system == "modelci-db":  # its registrations' model keys apart from the other's
        side.versions = itertools.count(1_000_001)
    states = {"client": side.hub if ours else side.client, "http": lambda: Raw(url)}
    answer = sys.stdout
    sys.stdout = sys.stderr  # whatever else prints stays off the answers
    for line in sys.stdin:
        command = json.loads(line)
        if command["do"] == "seed":
            reply: Any = side.seed(command["models"], command["dynamic_results"])
        elif command["do"] == "ids":
            reply = side.ids
        elif command["do"] == "adopt":
            reply = side.adopt(command["ids"])
        else:
            interface, operation = command["interface"], command["operation"]
            reply = run_cell(
                states[interface],
                getattr(side, f"{interface}_{operation}"),
                command["concurrency"],
                command["seconds"],
                command["min_requests"],
            )
        answer.write(json.dumps(reply) + "\n")
        answer.flush()


class Driver:
    def __init__(self, python: str, system: str, url: str, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [python, __file__, "--drive", system, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )

    def ask(self, **command: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"a driver died:\n{self.log.read_text()[-3000:]}")
        return json.loads(line)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


# The orchestra


def start_mlflow(mlflow_bin: str, port: int, folder: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(port)),
            *("--backend-store-uri", f"sqlite:///{folder}/mlflow.db"),
            *("--artifacts-destination", f"{folder}/mlflow-artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers and job runners go down with it
    )


def wait_for(url: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    parts = urlsplit(url)
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=2)
            connection.request("GET", parts.path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """A cell over its rounds: medians of the rounds' p50, p95 and requests/s."""
    p50s, p95s, rates = [], [], []
    for run in runs:
        ordered = sorted(run["latencies"])
        p50s.append(nearest_rank(ordered, 50))
        p95s.append(nearest_rank(ordered, 95))
        rates.append(len(ordered) / run["elapsed"])
    return {
        "p50": statistics.median(p50s),
        "p95": statistics.median(p95s),
        "rps": statistics.median(rates),
        "spread": max(p50s) / min(p50s),
        "n": sum(len(run["latencies"]) for run in runs),
    }


def ms(seconds: float) -> str:
    value = seconds * 1e3
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=300, help="seeded on each side")
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell and round")
    parser.add_argument("--min-requests", type=int, default=20, help="per cell and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dynamic-results",
        type=int,
        default=2,
        help="profiled: our seeded models each get a static result and this many dynamic ones",
    )
    parser.add_argument("--processes", type=int, default=2, help="our web processes")
    parser.add_argument(
        "--read-model",
        choices=("both", "memory", "database"),
        default="both",
        help="ours with its read model on (memory), off (database: MODELCI_READ_MODEL_MB=0), "
        "or both side by side on one database",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--operations", nargs="+", default=list(OPERATIONS), choices=OPERATIONS)
    parser.add_argument("--interfaces", nargs="+", default=list(INTERFACES), choices=INTERFACES)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 120 models, 1 round of 0.5 s cells"
    )
    parser.add_argument("--drive", nargs=2, metavar=("SYSTEM", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(*args.drive)
        return
    if args.quick:
        args.models, args.seconds, args.min_requests, args.rounds = 120, 0.5, 5, 1

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hub import serve, wait_until_up

    from modelci.server.embedded import free_port, running_database_url
    from modelci.server.settings import Settings

    systems = {
        "both": SYSTEMS,
        "memory": ("modelci", "mlflow"),
        "database": ("modelci-db", "mlflow"),
    }[args.read_model]
    mlflow_bin = os.environ.get("MLFLOW_BIN", "mlflow")
    mlflow_python = str(Path(mlflow_bin).with_name("python")) if "/" in mlflow_bin else "python"
    with tempfile.TemporaryDirectory() as folder:
        ports = {name: free_port() for name in systems}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        ours = [name for name in systems if name != "mlflow"]
        servers = []
        drivers: dict[str, Driver] = {}
        try:
            # The first of ours on its own embedded database; the second, if any, on the
            # first one's, so that both read the same models.
            first = ours[0]
            servers.append(
                serve(
                    Path(folder, first),
                    ports[first],
                    processes=str(args.processes),
                    **({"read_model_mb": "0"} if first == "modelci-db" else {}),
                )
            )
            mlflow = start_mlflow(mlflow_bin, ports["mlflow"], folder)
            servers.append(mlflow)
            wait_until_up(urls[first])
            if len(ours) == 2:
                database_url = running_database_url(
                    Settings(data_dir=Path(folder, first), _env_file=None).embedded_db_dir  # type: ignore[call-arg]
                )
                if database_url is None:
                    raise RuntimeError("the hub's embedded database does not answer")
                servers.append(
                    serve(
                        Path(folder, ours[1]),
                        ports[ours[1]],
                        processes=str(args.processes),
                        read_model_mb="0",
                        mongodb_url=database_url,
                    )
                )
                wait_until_up(urls[ours[1]])
            wait_for(f"{urls['mlflow']}/health")
            drivers = {
                name: Driver(
                    mlflow_python if name == "mlflow" else sys.executable,
                    name,
                    urls[name],
                    Path(folder, f"{name}.log"),
                )
                for name in systems
            }
            for name in [first, "mlflow"]:
                started = time.perf_counter()
                facts = drivers[name].ask(
                    do="seed", models=args.models, dynamic_results=args.dynamic_results
                )
                seconds = time.perf_counter() - started
                print(f"seeded {name}: {args.models} models in {seconds:.0f} s; {facts}")
            for name in ours[1:]:
                facts = drivers[name].ask(do="adopt", ids=drivers[first].ask(do="ids"))
                print(f"{name} reads the models seeded through {first}: {facts}")
            if "modelci" in systems:
                wait_until_serving(urls["modelci"], args.models)
            cells = [
                (operation, interface, concurrency)
                for operation in args.operations
                for concurrency in args.concurrency
                for interface in args.interfaces
            ]
            runs: dict[tuple[str, str, int, str], list[dict[str, Any]]] = {}
            for round_index in range(args.rounds):
                order = systems if round_index % 2 == 0 else systems[::-1]
                for operation, interface, concurrency in cells:
                    for name in order:
                        run = drivers[name].ask(
                            do="run",
                            operation=operation,
                            interface=interface,
                            concurrency=concurrency,
                            seconds=args.seconds,
                            min_requests=args.min_requests,
                        )
                        if run["errors"]:
                            raise RuntimeError(f"{name} {operation} {interface}: {run['errors']}")
                        runs.setdefault((operation, interface, concurrency, name), []).append(run)
                print(f"round {round_index + 1} of {args.rounds} done", file=sys.stderr)
            if "modelci" in systems:
                print(f"ours (memory), /readyz readModel: {read_model_report(urls['modelci'])}")
        finally:
            for driver in drivers.values():
                driver.close()
            for server in servers:
                if server is mlflow:
                    os.killpg(server.pid, 15)  # its workers and job runners with it
                else:
                    server.terminate()
            for server in servers:
                server.wait()

    print_table(args, systems, cells, runs, mlflow_bin)


def read_model_report(url: str) -> dict[str, Any]:
    """What /readyz says of the read model (the answering process's)."""
    import httpx

    report: dict[str, Any] = httpx.get(f"{url}/readyz").json()["readModel"]
    return report


def wait_until_serving(url: str, models: int, timeout_s: float = 120.0) -> None:
    """Until the read model of each web process answering is serving, with the seeded
    models in it; /readyz is asked a few times, as the requests land on any process."""
    deadline = time.monotonic() + timeout_s
    serving = 0
    while time.monotonic() < deadline:
        report = read_model_report(url)
        serving = serving + 1 if report["state"] == "serving" and report["models"] >= models else 0
        if serving >= 10:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the read model at {url} is not serving: {read_model_report(url)}")


def print_table(
    args: argparse.Namespace,
    systems: tuple[str, ...],
    cells: list[tuple[str, str, int]],
    runs: dict[tuple[str, str, int, str], list[dict[str, Any]]],
    mlflow_bin: str,
) -> None:
    ours = [name for name in systems if name != "mlflow"]
    ratios = [("mlflow", name) for name in ours]
    if len(ours) == 2:
        ratios.append(("modelci-db", "modelci"))
    print()
    print(
        "| operation | interface | c | "
        + " | ".join(f"{LABELS[name]} p50 / p95 (ms)" for name in systems)
        + " | req/s "
        + " / ".join(LABELS[name] for name in systems)
        + " | "
        + " | ".join(f"{LABELS[slow]} / {LABELS[fast]} p50 | p95" for slow, fast in ratios)
        + " |"
    )
    print("|---" * (4 + len(systems) + 2 * len(ratios)) + "|")
    spreads = []
    label = {"get": "get one model", "search": f"search, {SEARCH_RESULTS} full results"}
    label["register"] = "register, 64 KiB weight"
    for operation, interface, concurrency in cells:
        stats = {name: summary(runs[(operation, interface, concurrency, name)]) for name in systems}
        spreads += [each["spread"] for each in stats.values()]
        timings = " | ".join(
            f"{ms(stats[name]['p50'])} / {ms(stats[name]['p95'])}" for name in systems
        )
        rates = " / ".join(f"{stats[name]['rps']:.0f}" for name in systems)
        gains = " | ".join(
            f"**{stats[slow]['p50'] / stats[fast]['p50']:.1f}×** "
            f"| {stats[slow]['p95'] / stats[fast]['p95']:.1f}×"
            for slow, fast in ratios
        )
        print(
            f"| {label[operation]} | {interface} | {concurrency} | {timings} | {rates} | {gains} |"
        )
    print()
    print(
        f"Medians of {args.rounds} round(s) of {args.seconds:g} s a cell (at least "
        f"{args.min_requests} requests), {args.models} models seeded a side (ours each with "
        f"{args.dynamic_results} dynamic profile results), ours with "
        f"{args.processes} web process(es). Noise: a cell's slowest round p50 / fastest, "
        f"median {statistics.median(spreads):.2f}, max {max(spreads):.2f}."
    )
    command = " ".join(shlex.quote(part) for part in sys.argv[1:])
    print(f"\n    MLFLOW_BIN={mlflow_bin} python benchmarks/mlflow_registry.py {command}".rstrip())


if __name__ == "__main__":
    main()
