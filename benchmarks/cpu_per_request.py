"""Where a request's CPU goes: the load generator, the hub's web processes, the database.

At 16 concurrent clients on a small machine every party shares the same cores, so a
request's latency is bounded by the CPU it costs in all. This starts the hub as
`mlflow_registry.py` does (`benchmarks/hub.py`: embedded database, no workers,
--processes web processes), seeds --models models the same way, then runs each
operation (get, a search with 100 full results, a register with a 64 KiB weight) for
--seconds a cell and reads each process's CPU time from /proc before and after:

    python benchmarks/cpu_per_request.py [--models 300] [--seconds 6] [--concurrency 1 16]
        [--interfaces http client] [--operations get search register]

Printed: a Markdown table of CPU milliseconds per request by process (the driver is
this process: the client's or the raw request's own work), with p50 and requests/s.
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub import serve, wait_until_up
from mlflow_registry import INTERFACES, OPERATIONS, Ours, Raw, nearest_rank, run_cell

from modelci.server.embedded import free_port

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system time of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def role(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        command = cmdline.read().decode(errors="replace")
    if "secantus" in command:
        return "database"
    if "multiprocessing" in command:
        return "web"
    return "supervisor"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=6.0, help="per cell")
    parser.add_argument("--processes", type=int, default=2, help="our web processes")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--interfaces", nargs="+", default=list(INTERFACES), choices=INTERFACES)
    parser.add_argument("--operations", nargs="+", default=list(OPERATIONS), choices=OPERATIONS)
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        hub = serve(Path(folder), port, processes=str(args.processes))
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url)
            ours = Ours(url)
            ours.seed(args.models, 2)
            time.sleep(1)  # web processes started on demand settle
            processes = {pid: role(pid) for pid in [hub.pid, *descendants(hub.pid)]}
            for interface in args.interfaces:
                state = ours.hub if interface == "client" else (lambda: Raw(url))
                for operation in args.operations:
                    for concurrency in args.concurrency:
                        before = {pid: cpu_seconds(pid) for pid in processes}
                        driver_before = time.process_time()
                        cell = run_cell(
                            state,
                            getattr(ours, f"{interface}_{operation}"),
                            concurrency,
                            args.seconds,
                            20,
                        )
                        if cell["errors"]:
                            raise RuntimeError(cell["errors"])
                        requests = len(cell["latencies"]) + concurrency  # and the warm-ups
                        spent = {"driver": time.process_time() - driver_before}
                        for pid, name in processes.items():
                            spent[name] = spent.get(name, 0.0) + cpu_seconds(pid) - before[pid]
                        ordered = sorted(cell["latencies"])
                        rows.append(
                            {
                                "cell": f"{operation} | {interface} | {concurrency}",
                                "p50": nearest_rank(ordered, 50),
                                "rps": len(ordered) / cell["elapsed"],
                                **{name: seconds / requests for name, seconds in spent.items()},
                            }
                        )
        finally:
            hub.terminate()
            hub.wait()

    parties = ["driver", "web", "database", "supervisor"]
    print(
        "\n| operation | interface | c | p50 (ms) | req/s | CPU ms a request: "
        + " / ".join(parties)
        + " | in all |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        shares = [row.get(name, 0.0) * 1e3 for name in parties]
        print(
            f"| {row['cell']} | {row['p50'] * 1e3:.1f} | {row['rps']:.0f} | "
            + " / ".join(f"{share:.2f}" for share in shares)
            + f" | {sum(shares):.2f} |"
        )
    print(
        f"\n{args.models} models seeded (2 dynamic results each), {args.processes} web "
        f"process(es), {args.seconds:g} s a cell, {os.cpu_count()} cores."
    )


if __name__ == "__main__":
    main()
