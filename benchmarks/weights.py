"""Big weights: upload and download a file through the API versus `cp` on the same disk.

`modelci serve` runs as a child process (embedded database, file weight store); `curl`
streams the multipart upload over loopback (so that the client is not what is
measured) and downloads it back, into a file and into /dev/null (the server's side
alone), while a thread samples the server's resident memory. References, in the same
run: `cp` of the same file on the same disk, `cp` + `sync` of the copy (the upload is
durable: fsynced before the model is registered), and SHA-256 of the bytes in memory
(the upload hashes every byte: content addressing).

    python benchmarks/weights.py [--mb 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
from hub import serve, wait_until_up

from modelci.client import ModelHub
from modelci.server.embedded import free_port


class PeakMemory(threading.Thread):
    """Peak RSS of a process tree, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = self.baseline = self.process.memory_info().rss
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def growth_mb(self) -> float:
        self.stopping.set()
        self.join()
        return (self.peak - self.baseline) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as folder:
        source = Path(folder) / "weight.bin"
        with source.open("wb") as file:
            for _ in range(args.mb):
                file.write(os.urandom(1024 * 1024))
        size_mb = source.stat().st_size / 1e6
        port = free_port()
        server = serve(Path(folder) / "hub", port)
        rates: dict[str, list[float]] = {
            "cp": [],
            "cp+sync": [],
            "sha256": [],
            "upload": [],
            "download": [],
            "download to /dev/null": [],
        }
        growth = []
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url)
            for round_ in range(args.rounds):
                copy = Path(folder) / "copy.bin"
                for name, command in (("cp", []), ("cp+sync", ["sync", str(copy)])):
                    started = time.perf_counter()
                    subprocess.run(["cp", str(source), str(copy)], check=True)
                    if command:  # the upload is durable (fsync): so is this copy
                        subprocess.run(command, check=True)
                    rates[name].append(size_mb / (time.perf_counter() - started))
                    os.remove(copy)
                rates["sha256"].append(size_mb / sha256_seconds(source))

                memory = PeakMemory(server.pid)
                memory.start()
                started = time.perf_counter()
                model_id = curl_register(url, source, version=round_ + 1)
                rates["upload"].append(size_mb / (time.perf_counter() - started))
                downloaded = Path(folder) / "downloaded.bin"
                started = time.perf_counter()
                subprocess.run(
                    ["curl", "-sf", f"{url}/models/{model_id}/weight", "-o", str(downloaded)],
                    check=True,
                )
                rates["download"].append(size_mb / (time.perf_counter() - started))
                started = time.perf_counter()
                subprocess.run(
                    ["curl", "-sf", f"{url}/models/{model_id}/weight", "-o", os.devnull],
                    check=True,
                )
                rates["download to /dev/null"].append(size_mb / (time.perf_counter() - started))
                growth.append(memory.growth_mb())
                assert downloaded.stat().st_size == source.stat().st_size
                os.remove(downloaded)
                with ModelHub(url) as hub:
                    hub.delete_model(model_id)
        finally:
            server.terminate()
            server.wait()

    median = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in median.items():
        print(f"{name:>21}: {value:7.0f} MB/s")
    print(f"server peak memory growth: {max(growth):.0f} MB")
    print(
        f"ratios ({args.mb} MB, median of {args.rounds}): "
        f"upload/cp {median['upload'] / median['cp']:.2f}, "
        f"upload/(cp+sync) {median['upload'] / median['cp+sync']:.2f}, "
        f"upload/sha256 {median['upload'] / median['sha256']:.2f}, "
        f"download/cp {median['download'] / median['cp']:.2f}, "
        f"download to /dev/null/cp {median['download to /dev/null'] / median['cp']:.2f}"
    )


def sha256_seconds(source: Path) -> float:
    """Hashing the file's bytes, already in memory: the floor under any upload here."""
    data = source.read_bytes()
    started = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    return time.perf_counter() - started


def curl_register(url: str, source: Path, version: int) -> str:
    fields = (
        f'architecture:"Big",framework:PyTorch,engine:NONE,version:{version},dataset:"d",task:Other'
    )
    query = f"mutation($w: Upload!) {{ registerModel(input: {{{fields}}}, weight: $w) {{ id }} }}"
    operations = json.dumps({"query": query, "variables": {"w": None}})
    result = subprocess.run(
        [
            "curl",
            "-sf",
            f"{url}/graphql",
            "-H",
            "apollo-require-preflight: true",
            "-F",
            f"operations={operations}",
            "-F",
            'map={"0": ["variables.w"]}',
            "-F",
            f"0=@{source}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    model_id: str = json.loads(result.stdout)["data"]["registerModel"]["id"]
    return model_id


if __name__ == "__main__":
    main()
