"""What thousands of open profilingJob subscriptions cost a plain query.

One `modelci serve` (`benchmarks/hub.py`: embedded database, no workers, one web
process, auth on, the default caps) holds --jobs profiling jobs, RUNNING under a
benchmark "worker". A second process opens --subscriptions subscriptions to them over
graphql-transport-ws, as the caps allow: --tokens read tokens, each with connections of
at most 100 subscriptions, spread evenly over the jobs; it reads every message it gets.
A plain query, `profilingJob(id:) { id status progress }`, is sent one at a time on one
keep-alive connection for --seconds, in four phases (after a warm-up of as long):
- without subscriptions, nothing changing (half before they open, half after they close);
- without subscriptions, the worker heartbeating the jobs in turn, --changes-per-s (idem);
- with the subscriptions open, nothing changing;
- with them, the same heartbeats (each reaches every follower of its job).
Printed: each phase's p50 and p95, the ratios with and without subscriptions, and how
many job states the followers received while the jobs changed.

    python benchmarks/subscriptions.py [--subscriptions 3000] [--tokens 15] [--jobs 5]
                                       [--seconds 5] [--changes-per-s 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub import serve, wait_until_up
from mlflow_registry import WEIGHT, model_fields

from modelci.client import ModelHub
from modelci.server.embedded import free_port

PER_CONNECTION = 100
PHASES = ("without, idle", "without, changing", "with, idle", "with, changing")
QUERY = "query($id: ID!) { profilingJob(id: $id) { id status progress } }"
FOLLOW = "subscription($id: ID!) { profilingJob(id: $id) { id status progress } }"
CLAIM = 'mutation { claimProfilingJob(worker: "bench", devices: [], kinds: [PROFILE]) { id } }'
HEARTBEAT = """mutation($id: ID!, $progress: Float!) {
  heartbeatProfilingJob(id: $id, worker: "bench", progress: $progress) { progress }
}"""


def admin_token(data_dir: Path) -> str:
    """A token made with the CLI before the hub starts, as an operator makes the first."""
    created = subprocess.run(
        [
            *(sys.executable, "-m", "modelci.cli", "token", "create"),
            *("--name", "bench-admin", "--scope", "admin", "--data-dir", str(data_dir), "--init"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return created.stdout.strip().splitlines()[0]


def graphql(http: httpx.Client, token: str, query: str, **variables: Any) -> dict[str, Any]:
    body = http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


def prepare(url: str, admin: str, jobs: int, tokens: int) -> tuple[list[str], list[str]]:
    """The running jobs, and the read tokens of the followers."""
    with ModelHub(url, admin) as hub:
        model_id = hub.register_model(WEIGHT, convert=False, **model_fields("resnet", 1)).id
        for _ in range(jobs):
            hub.profile_model(model_id, batch_sizes=[1])
        readers = [hub.create_token(f"reader-{n}", ["read"]).token for n in range(tokens)]
    with httpx.Client(base_url=url, timeout=60) as http:
        claimed = [graphql(http, admin, CLAIM)["claimProfilingJob"]["id"] for _ in range(jobs)]
    return claimed, readers


async def follow_all(
    url: str, job_ids: list[str], readers: list[str], count: int, ready: Event, stop: Event
) -> int:
    """``count`` subscriptions over the readers' connections; the states received once
    all are open (their first states left out)."""
    from websockets.asyncio.client import connect

    received = 0
    opened = 0
    all_open = asyncio.Event()
    per_token = -(-count // len(readers))

    async def connection(token: str, first: int, size: int) -> None:
        nonlocal received, opened
        address = url.replace("http://", "ws://") + "/graphql"
        async with connect(
            address,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            max_queue=None,
            open_timeout=120,
        ) as socket:
            init = {"Authorization": f"Bearer {token}"}
            await socket.send(json.dumps({"type": "connection_init", "payload": init}))
            assert json.loads(await socket.recv())["type"] == "connection_ack"
            for number in range(first, first + size):
                job_id = job_ids[number % len(job_ids)]
                payload = {"query": FOLLOW, "variables": {"id": job_id}}
                message = {"id": str(number), "type": "subscribe", "payload": payload}
                await socket.send(json.dumps(message))
            pending = size
            while not stop.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(socket.recv(), 0.5))
                except TimeoutError:
                    continue
                assert message["type"] == "next", message
                if pending:
                    pending -= 1
                    if not pending:
                        opened += size
                        if opened == count:
                            all_open.set()
                else:
                    received += 1

    tasks = []
    for index, token in enumerate(readers):
        first = index * per_token
        mine = max(0, min(per_token, count - first))
        for offset in range(0, mine, PER_CONNECTION):
            size = min(PER_CONNECTION, mine - offset)
            tasks.append(asyncio.create_task(connection(token, first + offset, size)))
    await all_open.wait()
    ready.set()
    await asyncio.gather(*tasks)
    return received


def followers(
    url: str,
    job_ids: list[str],
    readers: list[str],
    count: int,
    ready: Event,
    stop: Event,
    received: Any,
) -> None:
    received.value = asyncio.run(follow_all(url, job_ids, readers, count, ready, stop))


class Changes:
    """The worker's heartbeats on the jobs in turn, at a steady rate, while on."""

    def __init__(self, url: str, token: str, job_ids: list[str], per_s: float) -> None:
        self.url, self.token, self.job_ids, self.per_s = url, token, job_ids, per_s
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self) -> Changes:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self.stop.wait(1 / self.per_s):
                job_id = self.job_ids[self.sent % len(self.job_ids)]
                progress = (self.sent % 100) / 100
                graphql(http, self.token, HEARTBEAT, id=job_id, progress=progress)
                self.sent += 1


def latencies(url: str, token: str, job_id: str, seconds: float) -> list[float]:
    """The plain query's times in ms, sent one after the other for ``seconds``."""
    times = []
    with httpx.Client(base_url=url, timeout=120) as http:
        graphql(http, token, QUERY, id=job_id)  # the connection open, the query prepared
        until = time.perf_counter() + seconds
        while (started := time.perf_counter()) < until:
            graphql(http, token, QUERY, id=job_id)
            times.append((time.perf_counter() - started) * 1000)
    return times


def summary(times: list[float]) -> tuple[float, float, int]:
    cuts = statistics.quantiles(times, n=100)
    return cuts[49], cuts[94], len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=3000)
    parser.add_argument("--tokens", type=int, default=15, help="read tokens the followers use")
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--changes-per-s", type=float, default=2.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        admin = admin_token(data_dir)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = serve(data_dir, port, auth="on")
        try:
            wait_until_up(url)
            job_ids, readers = prepare(url, admin, args.jobs, args.tokens)
            probe = readers[0]
            times: dict[str, list[float]] = {phase: [] for phase in PHASES}

            def without_them() -> None:
                times["without, idle"] += latencies(url, probe, job_ids[0], args.seconds / 2)
                with Changes(url, admin, job_ids, args.changes_per_s):
                    phase = latencies(url, probe, job_ids[0], args.seconds / 2)
                    times["without, changing"] += phase

            latencies(url, probe, job_ids[0], args.seconds)  # warm-up
            without_them()  # half before the subscriptions, half after: drift weighs alike
            ready, stop = multiprocessing.Event(), multiprocessing.Event()
            received = multiprocessing.Value("q", 0)
            process = multiprocessing.Process(
                target=followers,
                args=(url, job_ids, readers, args.subscriptions, ready, stop, received),
            )
            started = time.perf_counter()
            process.start()
            if not ready.wait(300):
                raise RuntimeError("the subscriptions did not all open")
            opened_s = time.perf_counter() - started
            times["with, idle"] = latencies(url, probe, job_ids[0], args.seconds)
            with Changes(url, admin, job_ids, args.changes_per_s) as changes:
                changing = time.perf_counter()
                times["with, changing"] = latencies(url, probe, job_ids[0], args.seconds)
                changing_s = time.perf_counter() - changing
            stop.set()
            process.join(60)
            without_them()
        finally:
            server.terminate()
            server.wait(60)

    print(
        f"{args.subscriptions} subscriptions ({args.tokens} tokens, at most {PER_CONNECTION} "
        f"a connection) on {args.jobs} jobs, opened in {opened_s:.1f} s; "
        f"phases of {args.seconds:g} s"
    )
    figures = {phase: summary(times[phase]) for phase in PHASES}
    print(f"{'phase':<20} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    for phase, (p50, p95, sent) in figures.items():
        print(f"{phase:<20} {p50:>8.2f} {p95:>8.2f} {sent:>8}")
    for state in ("idle", "changing"):
        with_, without = figures[f"with, {state}"], figures[f"without, {state}"]
        print(
            f"ratio with/without, {state}: p50 {with_[0] / without[0]:.2f}, "
            f"p95 {with_[1] / without[1]:.2f}"
        )
    print(
        f"while changing: {changes.sent} heartbeats in {changing_s:.1f} s, "
        f"{received.value} job states received by the followers "
        f"({args.subscriptions // args.jobs} followers a job)"
    )


if __name__ == "__main__":
    main()
