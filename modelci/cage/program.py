"""The program that runs inside the cage (``runner.py``): one step on one model file.

    python -m <a steps module> < request.json

The request (JSON on stdin) names the step, the input file, the scratch folder and the
step's parameters. The answer is JSON lines on stdout, one message each (``log`` and the
step's own kinds, or ``error`` when the step cannot be done). A steps module (the
server's ``inspect_step``, the worker's ``modelci.profiling.steps``) hands its steps to
``main``. Nothing here talks to the hub or sees its token: the process outside reads these
lines and decides.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .formats import UnsupportedModel
from .runner import MAX_TEXT

Step = Callable[[Path, Path, dict[str, Any]], None]  # input file, scratch folder, request

MESSAGES: list[TextIO] = []  # the messages' own channel, opened by main()


def send(kind: str, **fields: Any) -> None:
    # The worker refuses a text over MAX_TEXT (an exporter's error can be far longer).
    shortened = {
        name: value[: MAX_TEXT - 1] + "…"
        if isinstance(value, str) and len(value) > MAX_TEXT
        else value
        for name, value in fields.items()
    }
    MESSAGES[0].write(json.dumps({"type": kind, **shortened}) + "\n")
    MESSAGES[0].flush()


def main(steps: dict[str, Step]) -> None:
    # Messages go to stdout as it was when the cage started; anything else printed to
    # stdout (exporters print, native code writes to fd 1) goes to stderr instead.
    MESSAGES.append(os.fdopen(os.dup(1), "w"))
    os.dup2(2, 1)
    request = json.loads(sys.stdin.read())
    if request.get("processes"):  # before any of the model's code runs (see runner.py)
        resource.setrlimit(resource.RLIMIT_NPROC, (request["processes"], request["processes"]))
    path, scratch = Path(request["input"]), Path(request["scratch"])
    try:
        step = steps.get(request["step"])
        if step is None:
            raise ValueError(f"unknown step {request['step']!r}")
        step(path, scratch, request)
    except UnsupportedModel as error:
        send("error", permanent=True, message=f"UnsupportedModel: {error}")
    except MemoryError:
        send("error", permanent=True, message="MemoryError: the step ran out of its memory")
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        send("error", permanent=False, message=f"{type(error).__name__}: {error}")
