"""No head-of-line blocking: through `modelci serve` and its own worker, a conversion
queued behind a long profile runs beside it, not after it."""

from __future__ import annotations

import io
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import torch
from conftest import PREFLIGHT, REGISTER, model_input, modelci_serve, multipart
from networks import SmallConvNet

from modelci.server.embedded import free_port

T = TypeVar("T")

JOB = "query($id: ID!) { profilingJob(id: $id) { id kind status progress error worker } }"
PROFILE = """
mutation($id: ID!, $sizes: [Int!], $budget: Float) {
  profileModel(modelId: $id, batchSizes: $sizes, budgetSeconds: $budget) { id }
}"""
CANCEL = "mutation($id: ID!) { cancelProfilingJob(id: $id) { status } }"
CONVERT = "mutation($id: ID!) { convertModel(modelId: $id, targets: [ONNX]) { id kind } }"
RESULTS = "query($id: ID!) { model(id: $id) { profileResult { dynamicResults { batch } } } }"


def gql(hub: str, query: str, **variables: Any) -> dict[str, Any]:
    # A loaded 2-core machine (a profile and a conversion at once) may answer slowly.
    body = httpx.post(
        f"{hub}/graphql", json={"query": query, "variables": variables}, timeout=60
    ).json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 300.0) -> T:
    """Poll the API until ``probe`` returns something; bounded, so a hang fails."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def register(hub: str, content: bytes, architecture: str) -> str:
    """A TorchScript model stored without jobs. Its check loads torch in a fresh process,
    slow on a 2-core machine while the hub's worker starts: a long timeout."""
    query = REGISTER.replace("weight: $weight)", "weight: $weight, convert: false)")
    fields = model_input(
        architecture=architecture,
        framework="PyTorch",
        engine="TORCHSCRIPT",
        inputs=[{"name": "input", "shape": [-1, 3, 16, 16]}],
        outputs=[],
    )
    request = multipart(query, {"input": fields}, {"weight": ("model.pt", content)})
    body = httpx.post(f"{hub}/graphql", headers=PREFLIGHT, timeout=120, **request).json()
    assert not body.get("errors"), body
    model_id: str = body["data"]["registerModel"]["id"]
    return model_id


def torchscript_bytes() -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = SmallConvNet().eval()
        torch.jit.save(torch.jit.trace(net, torch.randn(2, 3, 16, 16)), buffer)
    return buffer.getvalue()


def test_a_conversion_is_not_held_behind_a_long_profile(tmp_path: Path) -> None:
    ending = ("SUCCEEDED", "FAILED", "CANCELLED")
    with modelci_serve(
        tmp_path, free_port(), workers="1", profile_window_s="0.3", profile_min_runs="5"
    ) as (hub, _):
        weight = torchscript_bytes()
        profiled = register(hub, weight, f"Long-{uuid.uuid4().hex[:6]}")
        source = register(hub, weight, f"Quick-{uuid.uuid4().hex[:6]}")
        # A profile that would run for many minutes: an hour's budget, 64 batch sizes.
        long_profile = gql(hub, PROFILE, id=profiled, sizes=list(range(1, 65)), budget=3600)[
            "profileModel"
        ]["id"]
        # It is under way: the worker's device lane is measuring.
        wait_for(
            "the profile's first dynamic result",
            lambda: gql(hub, RESULTS, id=profiled)["model"]["profileResult"]["dynamicResults"],
        )

        # A conversion (TorchScript to ONNX) queued behind it.
        conversion = gql(hub, CONVERT, id=source)["convertModel"]
        assert conversion["kind"] == "CONVERT"
        converted = wait_for(
            "the conversion to end",
            lambda: (
                (job := gql(hub, JOB, id=conversion["id"])["profilingJob"])["status"] in ending
                and job
            ),
        )
        assert converted["status"] == "SUCCEEDED", converted
        # ... while the long profile is still running, on the same worker.
        profile = gql(hub, JOB, id=long_profile)["profilingJob"]
        assert profile["status"] == "RUNNING", profile
        assert profile["worker"] == converted["worker"]

        assert gql(hub, CANCEL, id=long_profile)["cancelProfilingJob"]["status"] == "CANCELLED"
