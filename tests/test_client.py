"""The Python client against a live hub, as a notebook would use it."""

from __future__ import annotations

import asyncio
import filecmp
import hashlib
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import model_input, modelci_serve
from graphql import parse, validate

from modelci.client import AsyncModelHub, ModelHub
from modelci.core.domain import (
    DynamicProfileResult,
    InfoTuple,
    ProfileLatency,
    ProfileMemory,
    ProfileThroughput,
    StaticProfileResult,
    Task,
)
from modelci.core.errors import BadUserInput, Conflict, NotFound
from modelci.schema import schema
from modelci.server.embedded import free_port

FIELDS = {
    key: value
    for key, value in model_input().items()
    if key not in ("metric", "inputs", "outputs", "modelStatus")
}


ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "modelci" / "operations"
GENERATED = ROOT / "modelci" / "graphql_client"


def test_every_operation_document_is_valid_against_the_live_schema() -> None:
    fragments = "\n".join(
        path.read_text() for path in sorted(OPERATIONS.glob("*.graphql")) if "fragment" in path.name
    )
    for path in sorted(OPERATIONS.glob("*.graphql")):
        if path.name == "fragments.graphql":
            continue
        document = parse(path.read_text() + "\n" + fragments)
        errors = validate(schema._schema, document)
        # Fragments a file does not use are the only complaint allowed.
        assert [e for e in errors if "is never used" not in e.message] == [], path.name


def codegen_command() -> list[str] | None:
    """ariadne-codegen in its own tool environment (see [tool.ariadne-codegen]), or None."""
    configured = os.environ.get("MODELCI_CODEGEN_PYTHON")
    for python in (configured, ROOT / ".venv" / "tools" / "codegen" / "bin" / "python"):
        if python and Path(python).exists():
            return [str(python), "-m", "ariadne_codegen"]
    return None


def test_the_generated_client_is_what_the_documents_and_schema_give(tmp_path: Path) -> None:
    """Regenerating modelci/graphql_client from modelci/operations and schema.graphql
    changes nothing: the committed client cannot drift from either."""
    command = codegen_command()
    if command is None:
        missing = (
            "ariadne-codegen is not installed: python -m venv .venv/tools/codegen && "
            ".venv/tools/codegen/bin/pip install ariadne-codegen==0.19.0 "
            "(or set MODELCI_CODEGEN_PYTHON)"
        )
        if os.environ.get("CI"):  # .ci/run installs it: there, its absence is a failure
            pytest.fail(missing)
        pytest.skip(missing)
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ariadne-codegen"]
    lines = ["[tool.ariadne-codegen]"]
    for key, value in settings.items():
        if key == "scalars":
            continue
        if key in ("schema_path", "queries_path", "base_client_file_path"):
            value = str(ROOT / value)
        if key == "target_package_path":
            value = str(tmp_path)
        lines.append(f"{key} = {json_value(value)}")
    for scalar, mapping in settings.get("scalars", {}).items():
        lines.append(f"[tool.ariadne-codegen.scalars.{scalar}]")
        lines += [f"{key} = {json_value(value)}" for key, value in mapping.items()]
    config = tmp_path / "codegen.toml"
    config.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        [*command, "--config", str(config)], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    fresh = tmp_path / settings["target_package_name"]
    compared = filecmp.dircmp(fresh, GENERATED, ignore=["__pycache__"])
    assert (compared.left_only, compared.right_only) == ([], [])
    _, mismatched, errors = filecmp.cmpfiles(fresh, GENERATED, compared.common_files, shallow=False)
    assert (mismatched, errors) == ([], []), (
        "regenerate: .venv/tools/codegen/bin/python -m ariadne_codegen"
    )


def json_value(value: object) -> str:
    return json.dumps(value)  # TOML's strings, lists and booleans, as JSON writes them


IMPORTS_NOTHING_OF_THE_SERVER = """
import sys
import modelci.client, modelci.profiling.worker
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "strawberry")
assert not loaded, loaded
"""


def test_importing_the_client_and_worker_loads_no_strawberry() -> None:
    run = subprocess.run(
        [sys.executable, "-c", IMPORTS_NOTHING_OF_THE_SERVER], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelHub]:
    folder = tmp_path_factory.mktemp("hub")
    with modelci_serve(folder, free_port(), workers="0") as (url, _), ModelHub(url) as client:
        yield client


def timing(p50: float) -> InfoTuple:
    return InfoTuple(avg=p50, p50=p50, p95=p50, p99=None)


def test_the_seed_service_through_the_client(hub: ModelHub, tmp_path: Path) -> None:
    weight = os.urandom(3 * 1024 * 1024 + 5)
    seen: list[tuple[int, int]] = []
    model = hub.register_model(
        weight,
        progress=lambda done, total: seen.append((done, total)),
        metric=[{"name": "acc", "value": 0.76}],
        **FIELDS,
    )
    assert seen[-1] == (len(weight), len(weight))
    reported = [done for done, _ in seen]
    assert reported == sorted(set(reported)), reported  # each amount once, in order
    assert model.weight.sha256 == hashlib.sha256(weight).hexdigest()
    assert hub.get_by_id(model.id) == model
    assert [m.id for m in hub.get_models(architecture="ResNet50")] == [model.id]
    assert [m.id for m in hub.get_models(task=Task.Image_Classification)] == [model.id]

    updated = hub.update_model(model.id, creator="alice", metric=[{"name": "acc", "value": 0.8}])
    assert updated.creator == "alice" and updated.metric[0].value == 0.8

    static = StaticProfileResult(parameters=1, flops=2, memory=3, mread=4, mwrite=5, mrw=9)
    assert hub.register_static_profiling_result(model.id, static).profile_result.static_result
    dynamic = DynamicProfileResult(
        ip="10.0.0.1",
        device_id="cpu",
        device_name="CPU",
        batch=4,
        memory=ProfileMemory(total_memory=1, memory_usage=1, utilization=0.5),
        latency=ProfileLatency(
            initialization_latency=timing(1),
            preprocess_latency=timing(0.1),
            inference_latency=timing(0.01),
            postprocess_latency=timing(0.1),
        ),
        throughput=ProfileThroughput(
            batch_formation_throughput=1,
            preprocess_throughput=1,
            inference_throughput=400,
            postprocess_throughput=1,
        ),
    )
    hub.register_dynamic_profiling_result(model.id, dynamic)
    with pytest.raises(Conflict):
        hub.register_dynamic_profiling_result(model.id, dynamic)
    faster = dynamic.model_copy(
        update={"latency": dynamic.latency.model_copy(update={"inference_latency": timing(0.005)})}
    )
    results = hub.update_dynamic_profiling_result(model.id, faster).profile_result.dynamic_results
    assert results[0].latency.inference_latency.p50 == 0.005
    assert (
        hub.delete_dynamic_profiling_result(
            model.id, "10.0.0.1", "cpu"
        ).profile_result.dynamic_results
        == []
    )

    received: list[int] = []
    path = hub.download_weight(model.id, tmp_path, progress=lambda done, _: received.append(done))
    assert path.read_bytes() == weight and received[-1] == len(weight)

    assert hub.delete_model(model.id).id == model.id
    with pytest.raises(NotFound):
        hub.get_by_id(model.id)
    with pytest.raises(BadUserInput):
        hub.get_by_id("not-an-id")


def test_jobs_and_the_async_client(hub: ModelHub) -> None:
    model = hub.register_model(b"w", **{**FIELDS, "architecture": "JobNet"})
    job = hub.profile_model(model.id, batch_sizes=[1, 2])
    assert job.batch_sizes == [1, 2] and hub.get_job(job.id).status.value == "QUEUED"
    assert [j.id for j in hub.get_jobs(model_id=model.id)] == [job.id]
    assert hub.cancel_job(job.id).status.value == "CANCELLED"
    assert hub.wait_for_job(job.id).status.value == "CANCELLED"

    async def use_async() -> tuple[str, str, list[str]]:
        async with AsyncModelHub(hub.url) as client:
            found = await client.get_by_id(model.id)
            queued = await client.profile_model(model.id, batch_sizes=[4])
            cancelled = await client.cancel_job(queued.id)
            finished = await client.wait_for_job(queued.id)
            listed = await client.get_models(architecture="JobNet")
            assert cancelled.status is finished.status
            return found.architecture, finished.status.value, [m.id for m in listed]

    assert asyncio.run(use_async()) == ("JobNet", "CANCELLED", [model.id])
