"""What the GPU run installs from its wheels folder, read from pyproject.toml.

    python deploy/gpu/requirements.py            # the requirements, one a line
    python deploy/gpu/requirements.py --build    # with the build backend's and pip
    python deploy/gpu/requirements.py --reused   # what is taken from beside torch instead

The hub's own dependencies, the ``embedded`` extra (the database ``modelci serve``
starts), the ``profiling`` extra without torch (the machine's own CUDA build is used),
and what tests/test_gpu.py needs to run (pytest, pytest-asyncio, websockets).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# Taken from the Python that holds torch, with what each of them requires there: torch
# because it is the machine's own build, numpy, onnx and onnxruntime because they come
# with such a PyTorch almost always and together weigh over 50 MB as wheels.
REUSED = ("torch", "numpy", "onnx", "onnxruntime")
# Left out of the folder: the above, and torch's own requirements that other packages
# pull in as well (onnxscript's onnx-ir needs sympy).
LEFT_OUT = (*REUSED, "sympy", "mpmath")
# From the test extra: what the gpu-marked tests need to run.
TEST_RUNNER = ("pytest", "pytest-asyncio", "websockets")


def name_of(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def requirements(build: bool = False) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())
    extras = project["project"]["optional-dependencies"]
    wanted = [
        *project["project"]["dependencies"],
        *extras["embedded"],
        *(each for each in extras["profiling"] if name_of(each) != "torch"),
        *(each for each in extras["test"] if name_of(each) in TEST_RUNNER),
    ]
    if build:
        wanted += [*project["build-system"]["requires"], "pip"]
    kept: dict[str, str] = {}
    for each in wanted:  # one line a package, the first that names it
        kept.setdefault(name_of(each), each)
    return list(kept.values())


def main() -> None:
    if "--reused" in sys.argv[1:]:
        print("\n".join(REUSED))
    elif "--left-out" in sys.argv[1:]:
        print("\n".join(LEFT_OUT))
    else:
        print("\n".join(requirements(build="--build" in sys.argv[1:])))


if __name__ == "__main__":
    main()
