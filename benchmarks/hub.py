"""`modelci serve` for a benchmark: started as a child process, waited for until ready."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx


def serve(data_dir: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    """The hub on the embedded database, without profiling workers; ``settings`` become
    MODELCI_* variables, and the caller's own MODELCI_* are left out."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELCI_")}
    env |= {"MODELCI_WORKERS": "0", "MODELCI_LOG_LEVEL": "WARNING"}
    env |= {f"MODELCI_{name.upper()}": value for name, value in settings.items()}
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "modelci.cli", "serve"),
            *("--port", str(port), "--data-dir", str(data_dir)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until_up(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")
