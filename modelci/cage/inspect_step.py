"""The server's step in the cage: loading an uploaded TorchScript archive.

python -m modelci.cage.inspect_step < request.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .program import main, send

# What the inspect step logs: torch is imported (the hub times the load from then), and
# the verdict that the archive loaded and every graph passed.
INSPECT_LOADING = "torch imported: loading the archive"
INSPECT_PASSED = "loaded: its graphs call allowed operators only"


def run_inspect(path: Path, scratch: Path, request: dict[str, Any]) -> None:
    """Load an uploaded TorchScript archive as registration checks it: ``torch.jit.load``
    runs the archive's ``__setstate__`` methods, so the load is the upload's own code.

    Request key: ``budget``, the bytes of address space the load may add to what importing
    torch took (torch's own mappings are the hub's cost, not the upload's). Messages: the
    ``log`` lines ``INSPECT_LOADING`` then ``INSPECT_PASSED``, or an ``error``."""
    import resource

    import torch

    from .formats import check_torchscript_graphs

    torch.set_num_threads(1)
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + int(request["budget"])
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    send("log", message=INSPECT_LOADING)
    check_torchscript_graphs(str(path))
    send("log", message=INSPECT_PASSED)


if __name__ == "__main__":
    main({"inspect": run_inspect})
