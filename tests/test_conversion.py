"""Conversion: uploads checked by content, verified variants, lineage, cascade delete."""

from __future__ import annotations

import io
import json
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import (
    REGISTER,
    Api,
    model_input,
    modelci_serve,
    register_live,
    serving,
)
from networks import SequenceClassifier, SmallConvNet
from test_errors import model_count, staged_files, stored_blobs
from test_worker import QUICK, follow, worker
from typer.testing import CliRunner

from modelci.cli.main import app
from modelci.client import ModelHub
from modelci.core.errors import BadUserInput
from modelci.server.app import create_app
from modelci.server.embedded import free_port
from modelci.server.settings import Settings

LINEAGE = """
query($id: ID!) {
  model(id: $id) {
    id engine modelStatus parentModelId
    weight { format }
    conversion { sourceEngine batchSizes maxAbsDiff maxRelDiff tolerance }
    parent { id }
    children { id engine modelStatus conversion { maxRelDiff batchSizes } weight { format } }
  }
}"""

JOBS = """
query($id: ID) {
  profilingJobs(modelId: $id) {
    nodes { id kind status targets profileVariants error log { message } }
  }
}"""

DELETE = "mutation($id: ID!, $cascade: Boolean!) { deleteModel(id: $id, cascade: $cascade) { id } }"
CLAIM = """
mutation($worker: String!, $devices: [DeviceInput!]!, $kinds: [JobKind!]) {
  claimProfilingJob(worker: $worker, devices: $devices, kinds: $kinds) { id }
}"""
CPU_DEVICE = {
    "host": "h",
    "ip": "10.0.0.7",
    "deviceId": "cpu",
    "name": "CPU",
    "kind": "CPU",
    "totalMemory": 1024,
}

SMALL_INPUTS = [{"name": "input", "shape": [-1, 3, 16, 16], "dtype": "TYPE_FP32"}]


def to_bytes(save: Any) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    torch.manual_seed(0)
    net = SmallConvNet().eval()
    example = torch.randn(2, 3, 16, 16)
    sequence = SequenceClassifier().eval()
    tokens = torch.randint(0, 32, (2, 8))
    batch, length = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("length")
    return {
        "onnx": to_bytes(
            lambda buffer: torch.onnx.export(
                net,
                (example,),
                buffer,
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "b"}, "output": {0: "b"}},
            )
        ),
        "torchscript": to_bytes(
            lambda buffer: torch.jit.save(torch.jit.trace(net, example), buffer)
        ),
        "sequence.pt2": to_bytes(
            lambda buffer: torch.export.save(
                torch.export.export(sequence, (tokens,), dynamic_shapes=({0: batch, 1: length},)),
                buffer,
            )
        ),
        "pickle": to_bytes(lambda buffer: torch.save(net, buffer)),
    }


async def register_file(api: Api, content: bytes, **fields: Any) -> dict[str, Any]:
    """The registration's response body, errors included."""
    variables = {"input": model_input(**{"architecture": f"Net-{uuid.uuid4().hex[:6]}", **fields})}
    return await api.post(REGISTER, variables, {"weight": ("model.bin", content)})


async def registered(api: Api, content: bytes, **fields: Any) -> dict[str, Any]:
    """A registration that must succeed."""
    body = await register_file(api, content, **fields)
    assert not body.get("errors"), body["errors"]
    model: dict[str, Any] = body["data"]["registerModel"]
    return model


# Uploads checked by content (in-process app, no worker needed)


async def test_onnx_registration_fills_in_the_graphs_inputs_and_outputs(
    api: Api, files: dict[str, bytes]
) -> None:
    body = await register_file(
        api, files["onnx"], framework="PyTorch", engine="ONNX", inputs=[], outputs=[]
    )
    model = body["data"]["registerModel"]
    lineage = (await api.data(LINEAGE, {"id": model["id"]}))["model"]
    assert lineage["weight"]["format"] == "ONNX"
    assert model["inputs"] == [
        {"name": "input", "shape": [-1, 3, 16, 16], "dtype": "TYPE_FP32", "format": "FORMAT_NONE"}
    ]
    assert model["outputs"] == [
        {"name": "output", "shape": [-1, 10], "dtype": "TYPE_FP32", "format": "FORMAT_NONE"}
    ]
    jobs = (await api.data(JOBS, {"id": model["id"]}))["profilingJobs"]["nodes"]
    assert [(job["kind"], job["targets"]) for job in jobs] == [("CONVERT", ["TRT"])]


async def test_bad_uploads_are_refused_and_store_nothing(
    api: Api, files: dict[str, bytes], settings: Settings
) -> None:
    cases = {
        "corrupt ONNX": (files["onnx"][: len(files["onnx"]) // 2], {"engine": "ONNX"}),
        "TorchScript declared as ONNX": (files["torchscript"], {"engine": "ONNX"}),
        "shape contradicting the graph": (
            files["onnx"],
            {"engine": "ONNX", "inputs": [{"name": "input", "shape": [-1, 3, 32, 32]}]},
        ),
        "wrong input name": (
            files["onnx"],
            {"engine": "ONNX", "inputs": [{"name": "pixels", "shape": [-1, 3, 16, 16]}]},
        ),
        "pickle without the allow flag": (files["pickle"], {"engine": "PYTORCH"}),
        "not TorchScript": (b"plain bytes", {"engine": "TORCHSCRIPT"}),
    }
    for case, (content, fields) in cases.items():
        body = await register_file(api, content, outputs=[], **fields)
        assert body.get("errors"), case
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", (case, error)
        assert error["extensions"]["field"] in ("weight", "inputs"), (case, error)
    assert await model_count(api) == 0
    assert stored_blobs(settings) == [] and staged_files(settings) == []


async def test_pickles_are_accepted_only_when_allowed(
    settings: Settings, mongodb_url: str, files: dict[str, bytes]
) -> None:
    trusting = settings.model_copy(update={"allow_pickle": True})
    async with serving(create_app(trusting, mongodb_url=mongodb_url)) as api:
        model = await registered(api, files["pickle"], engine="PYTORCH", outputs=[])
        lineage = (await api.data(LINEAGE, {"id": model["id"]}))["model"]
        assert lineage["weight"]["format"] == "TORCH_PICKLE"


async def test_conversion_requests(api: Api, files: dict[str, bytes]) -> None:
    source = await registered(api, files["torchscript"], engine="TORCHSCRIPT", outputs=[])
    jobs = (await api.data(JOBS, {"id": source["id"]}))["profilingJobs"]["nodes"]
    assert [(job["kind"], job["targets"]) for job in jobs] == [("CONVERT", ["ONNX", "TRT"])]

    convert = """mutation($id: ID!, $targets: [Engine!]) {
      convertModel(modelId: $id, targets: $targets, profile: true) { kind targets profileVariants }
    }"""
    job = (await api.data(convert, {"id": source["id"], "targets": ["ONNX"]}))["convertModel"]
    assert job == {"kind": "CONVERT", "targets": ["ONNX"], "profileVariants": True}
    code = await api.error_code(convert, {"id": source["id"], "targets": ["TFS"]})
    assert code == "BAD_USER_INPUT"
    opaque = await api.register(b"a state dict")
    assert await api.error_code(convert, {"id": opaque["id"]}) == "BAD_USER_INPUT"
    no_convert = REGISTER.replace("weight: $weight)", "weight: $weight, convert: false)")
    body = await api.post(
        no_convert,
        {"input": model_input(architecture="Quiet", engine="TORCHSCRIPT", outputs=[])},
        {"weight": ("m.pt", files["torchscript"])},
    )
    quiet = body["data"]["registerModel"]["id"]
    assert (await api.data(JOBS, {"id": quiet}))["profilingJobs"]["nodes"] == []


async def test_lineage_and_cascade_delete(
    api: Api, files: dict[str, bytes], settings: Settings
) -> None:
    architecture = f"Lineage-{uuid.uuid4().hex[:6]}"
    source = await registered(
        api,
        files["torchscript"],
        engine="TORCHSCRIPT",
        inputs=SMALL_INPUTS,
        outputs=[],
        architecture=architecture,
    )
    # A variant is registered by the worker running the source's conversion job.
    variant_query = """
    mutation($source: ID!, $weight: Upload!, $check: ConversionCheckInput!, $job: ID,
             $worker: String, $profile: Boolean! = false) {
      registerConvertedModel(sourceId: $source, engine: ONNX, weight: $weight,
                             conversion: $check, profile: $profile, jobId: $job,
                             worker: $worker) { id }
    }"""
    check = {
        "sourceEngine": "TORCHSCRIPT",
        "batchSizes": [1, 4],
        "maxAbsDiff": 1e-7,
        "maxRelDiff": 2e-7,
        "tolerance": 1e-4,
    }
    claim = {"worker": "w1", "devices": [CPU_DEVICE], "kinds": ["CONVERT"]}
    conversion = (await api.data(CLAIM, claim))["claimProfilingJob"]  # the source's own
    variant_id = (
        await api.data(
            variant_query,
            {"source": source["id"], "check": check, "job": conversion["id"], "worker": "w1"},
            {"weight": ("v.onnx", files["onnx"])},
        )
    )["registerConvertedModel"]["id"]

    lineage = (await api.data(LINEAGE, {"id": source["id"]}))["model"]
    assert lineage["parent"] is None
    assert [child["id"] for child in lineage["children"]] == [variant_id]
    child = lineage["children"][0]
    assert child["engine"] == "ONNX" and child["modelStatus"] == ["CONVERTED"]
    assert child["weight"]["format"] == "ONNX"
    variant = (await api.data(LINEAGE, {"id": variant_id}))["model"]
    assert variant["parent"] == {"id": source["id"]} and variant["parentModelId"] == source["id"]
    assert variant["conversion"]["maxRelDiff"] == 2e-7

    # The variant again, for a conversion that asked for its variants' profiling: a
    # conflict naming it. Its profiling is queued once however often the conversion job
    # asks; a caller without a job registers no variant at all.
    again = {"source": source["id"], "check": check, "profile": True}
    body = await api.post(variant_query, again, {"weight": ("v.onnx", files["onnx"])})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "jobId" in error["message"]
    convert = "mutation($id: ID!) { convertModel(modelId: $id, profile: true) { id } }"
    await api.data(convert, {"id": source["id"]})
    profiling_conversion = (await api.data(CLAIM, claim))["claimProfilingJob"]
    for _ in range(2):
        variables = {**again, "job": profiling_conversion["id"], "worker": "w1"}
        body = await api.post(variant_query, variables, {"weight": ("v.onnx", files["onnx"])})
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "CONFLICT"
        assert error["extensions"]["variantId"] == variant_id
        assert error["extensions"]["profilingQueued"] is True
    jobs = (await api.data(JOBS, {"id": variant_id}))["profilingJobs"]["nodes"]
    assert [(job["kind"], job["status"]) for job in jobs] == [("PROFILE", "QUEUED")]
    assert await model_count(api) == 2

    # Another source whose ONNX variant would have the same key (same architecture and
    # version, another engine): the conflict names the model holding it, not as its own.
    other = await registered(
        api,
        files["sequence.pt2"],
        engine="PYTORCH",
        architecture=architecture,
        inputs=[{"name": "tokens", "shape": [-1, -1], "dtype": "TYPE_INT64"}],
        outputs=[],
    )
    others = (await api.data(CLAIM, claim))["claimProfilingJob"]  # the other's conversion
    variables = {"source": other["id"], "check": check, "job": others["id"], "worker": "w1"}
    body = await api.post(variant_query, variables, {"weight": ("v.onnx", files["onnx"])})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["extensions"]["modelId"] == variant_id and "variantId" not in error["extensions"]
    await api.data(DELETE, {"id": other["id"], "cascade": True})

    assert await api.error_code(DELETE, {"id": source["id"], "cascade": False}) == "CONFLICT"
    assert await model_count(api) == 2
    await api.data(DELETE, {"id": source["id"], "cascade": True})
    assert await model_count(api) == 0
    assert stored_blobs(settings) == []


# End to end with a worker


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with modelci_serve(tmp_path_factory.mktemp("hub"), free_port(), workers="0") as (url, _):
        yield url


def register_source(hub: str, content: bytes, profile: bool, **fields: Any) -> str:
    return register_live(
        hub,
        content,
        f"profile: {json.dumps(profile)}",
        architecture=f"Net-{uuid.uuid4().hex[:6]}",
        **fields,
    )


def graphql(hub: str, query: str, **variables: Any) -> dict[str, Any]:
    body = httpx.post(f"{hub}/graphql", json={"query": query, "variables": variables}).json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


def follow_all_jobs(hub: str, model_id: str) -> list[dict[str, Any]]:
    """Follows every job of the model, and of the variants it produces, to its end (a
    worker must be running)."""
    pending = [model_id]
    finished: dict[str, dict[str, Any]] = {}
    while pending:
        current = pending.pop()
        for job in graphql(hub, JOBS, id=current)["profilingJobs"]["nodes"]:
            if job["id"] not in finished:
                finished[job["id"]] = list(follow(hub, job["id"]))[-1]
        children = graphql(hub, LINEAGE, id=current)["model"]["children"]
        pending += [child["id"] for child in children]
    return list(finished.values())


def run_all_jobs(hub: str, model_id: str) -> list[dict[str, Any]]:
    """Every job of the model and of its variants, run to its end by a worker of its own."""
    with worker(hub, *QUICK, "--lease-seconds", "30"):
        return follow_all_jobs(hub, model_id)


def test_torchscript_model_converts_to_a_verified_onnx_variant_and_both_are_profiled(
    hub: str, files: dict[str, bytes]
) -> None:
    source_id = register_source(
        hub,
        files["torchscript"],
        profile=True,
        engine="TORCHSCRIPT",
        inputs=SMALL_INPUTS,
        outputs=[],
    )
    jobs = run_all_jobs(hub, source_id)
    assert sorted(job["status"] for job in jobs) == ["SUCCEEDED"] * 3  # convert, 2 profiles

    lineage = graphql(hub, LINEAGE, id=source_id)["model"]
    (variant,) = lineage["children"]
    assert variant["engine"] == "ONNX" and variant["modelStatus"] == ["CONVERTED"]
    assert variant["conversion"]["batchSizes"] == [1, 4]
    assert variant["conversion"]["maxRelDiff"] <= 1e-4

    # The downloaded variant computes what the source computes, checked here.
    onnx_bytes = httpx.get(f"{hub}/models/{variant['id']}/weight").content
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    source = torch.jit.load(io.BytesIO(files["torchscript"]))
    images = np.random.default_rng(7).standard_normal((5, 3, 16, 16), dtype=np.float32)
    (ours,) = session.run(None, {"input": images})
    with torch.inference_mode():
        expected = source(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)

    for model_id in (source_id, variant["id"]):
        result = graphql(
            hub,
            "query($id: ID!) { model(id: $id) { profileResult { staticResult { macs } "
            "dynamicResults { batch } } } }",
            id=model_id,
        )["model"]["profileResult"]
        assert result["staticResult"]["macs"] == 8 * 16 * 16 * 27 + 80
        batches = [entry["batch"] for entry in result["dynamicResults"]]
        assert batches == [2**power for power in range(len(batches))]  # an adaptive sweep


def test_torch_export_model_converts_by_default_to_aotinductor_and_onnx_both_verified(
    hub: str, files: dict[str, bytes], tmp_path: Path
) -> None:
    """A torch.export program with a dynamic sequence length: compiled ahead of time into
    an AOTInductor package and exported to ONNX (TorchScript, deprecated by torch, only on
    request), each verified, each right at lengths never seen in conversion, and each
    profiled when asked."""
    source_id = register_source(
        hub,
        files["sequence.pt2"],
        profile=False,
        engine="PYTORCH",
        task="Text_Classification",
        inputs=[{"name": "tokens", "shape": [-1, -1], "dtype": "TYPE_INT64"}],
        outputs=[{"name": "logits", "shape": [-1, 4]}],
    )
    (job,) = run_all_jobs(hub, source_id)
    assert job["status"] == "SUCCEEDED", job
    children = graphql(hub, LINEAGE, id=source_id)["model"]["children"]
    assert sorted(child["engine"] for child in children) == ["AOTINDUCTOR", "ONNX"]
    weights = {
        child["engine"]: httpx.get(f"{hub}/models/{child['id']}/weight").content
        for child in children
    }
    session = ort.InferenceSession(weights["ONNX"], providers=["CPUExecutionProvider"])
    package = tmp_path / "sequence-aoti.pt2"
    package.write_bytes(weights["AOTINDUCTOR"])
    compiled = torch._inductor.aoti_load_package(str(package))
    program = torch.export.load(io.BytesIO(files["sequence.pt2"]))
    for length in (3, 17):  # lengths never seen in conversion
        tokens = np.random.default_rng(length).integers(0, 32, (2, length))
        (ours,) = session.run(None, {session.get_inputs()[0].name: tokens})
        expected = program.module()(torch.from_numpy(tokens)).detach().numpy()
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
        from_package = compiled(torch.from_numpy(tokens)).detach().numpy()
        np.testing.assert_allclose(from_package, expected, rtol=1e-4, atol=1e-5)
    # A compiled package comes in as a conversion's variant only, never as an upload.
    with pytest.raises(BadUserInput, match="AOTInductor package is compiled native code"):
        ModelHub(hub).register_model(
            weights["AOTINDUCTOR"],
            architecture="UploadedPackage",
            dataset="tokens",
            framework="PyTorch",
            engine="AOTINDUCTOR",
            task="Text_Classification",
            inputs=[{"name": "tokens", "shape": [-1, -1], "dtype": "TYPE_INT64"}],
            convert=False,
        )
    assert ModelHub(hub).get_models(architecture="UploadedPackage") == []

    # Converting to them again is refused before any work: the variants are there.
    to_both = ["--to", "ONNX", "--to", "AOTINDUCTOR"]
    refused = CliRunner().invoke(app, ["convert", source_id, *to_both, "--server", hub])
    assert refused.exit_code == 5, refused.output
    said = " ".join(refused.output.split())
    for child in children:
        assert f"{child['engine']} variant {child['id']}" in said, said
    # Converting again with profiling asked for, on the command line: the variants are
    # there already, so the job names them and profiles those. The same worker runs the
    # profiling: one stopped after the conversion could leave a profiling job it had
    # claimed to wait out its lease.
    with worker(hub, *QUICK, "--lease-seconds", "30"):
        again = CliRunner().invoke(app, ["convert", source_id, "--profile", "--server", hub])
        assert again.exit_code == 0, again.output
        follow_all_jobs(hub, source_id)  # the variants' profiling
    printed = " ".join(again.output.split())  # as wrapped to the terminal's width
    assert "SUCCEEDED" in printed and "variants registered: none" in printed, printed
    for child in children:
        assert f"{child['engine']} ({child['id']}, profiling queued)" in printed, printed
        assert f"profiling {child['id']} ({child['engine']}): job " in printed, printed
        results = graphql(
            hub,
            "query($id: ID!) { model(id: $id) { profileResult { dynamicResults { batch } } } }",
            id=child["id"],
        )["model"]["profileResult"]["dynamicResults"]
        assert results, child
    assert len(graphql(hub, LINEAGE, id=source_id)["model"]["children"]) == 2


def test_a_wrong_declared_shape_fails_fast_with_the_reason_first(
    hub: str, files: dict[str, bytes]
) -> None:
    """An RGB network declared with one channel once failed each exporter in turn, the job's
    error some forty lines of TorchScript trace with the reason last."""
    one_channel = [{"name": "input", "shape": [-1, 1, 16, 16], "dtype": "TYPE_FP32"}]
    source_id = register_source(
        hub, files["torchscript"], profile=False, engine="TORCHSCRIPT", inputs=one_channel
    )
    (job,) = run_all_jobs(hub, source_id)
    assert job["status"] == "FAILED", job
    first = job["error"].splitlines()[0]
    assert "does not run on its declared inputs (input [-1, 1, 16, 16] FP32)" in first, first
    assert "channels" in first, first  # the exporter's own words for it, on that line
    assert graphql(hub, LINEAGE, id=source_id)["model"]["children"] == []


def test_a_conversion_that_registered_some_variants_says_so(
    hub: str, files: dict[str, bytes]
) -> None:
    """A conversion that registered one variant and could not register another ended
    FAILED, naming only the failure: the variant it did register went unsaid."""
    architecture = f"Partly-{uuid.uuid4().hex[:6]}"
    task = "Text_Classification"
    source_id = register_live(
        hub,
        files["sequence.pt2"],
        "profile: false, convert: false",
        architecture=architecture,
        engine="PYTORCH",
        task=task,
        inputs=[{"name": "tokens", "shape": [-1, -1], "dtype": "TYPE_INT64"}],
        outputs=[{"name": "logits", "shape": [-1, 4]}],
    )
    queued = CliRunner().invoke(
        app,
        [
            "convert",
            source_id,
            "--to",
            "ONNX",
            "--to",
            "TORCHSCRIPT",
            "--no-follow",
            "--server",
            hub,
        ],
    )
    assert queued.exit_code == 0, queued.output
    # Meanwhile another model comes to hold the key the TorchScript variant would have.
    holder = register_live(
        hub,
        files["torchscript"],
        "convert: false",
        architecture=architecture,
        engine="TORCHSCRIPT",
        task=task,
        inputs=SMALL_INPUTS,
    )
    (job,) = run_all_jobs(hub, source_id)
    (child,) = graphql(hub, LINEAGE, id=source_id)["model"]["children"]
    assert child["engine"] == "ONNX"
    assert job["status"] == "FAILED", job
    assert job["error"].startswith(
        f"ConversionFailed: partly done: ONNX registered as {child['id']}; not registered: "
        "TORCHSCRIPT: "
    ), job["error"]
    assert holder in job["error"]

    # Asked again, the conversion is refused before any work, naming the holder.
    again = CliRunner().invoke(app, ["convert", source_id, "--to", "TORCHSCRIPT", "--server", hub])
    assert again.exit_code == 5, again.output
    said = " ".join(again.output.split())
    assert f"TORCHSCRIPT: model {holder} holds the key" in said, said
    assert len(graphql(hub, JOBS, id=source_id)["profilingJobs"]["nodes"]) == 1


def test_onnx_models_convert_to_nothing_more_without_a_gpu(
    hub: str, files: dict[str, bytes]
) -> None:
    source_id = register_source(
        hub, files["onnx"], profile=False, engine="ONNX", inputs=SMALL_INPUTS, outputs=[]
    )
    (job,) = run_all_jobs(hub, source_id)
    assert job["status"] == "SUCCEEDED"
    messages = " ".join(entry["message"] for entry in job["log"])
    assert "TensorRT skipped: no GPU" in messages
    assert graphql(hub, LINEAGE, id=source_id)["model"]["children"] == []


def test_serve_started_in_a_folder_holding_another_modelci_still_runs_its_jobs(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    """A user starts `modelci serve` in a project folder that holds another `modelci`
    package (a checkout of this repository, say): the worker it starts imports the
    installed hub, not that folder's, and the registration's conversion runs."""
    project = tmp_path / "project"
    (project / "modelci").mkdir(parents=True)
    (project / "modelci" / "__init__.py").write_text(
        'raise ImportError("this folder\'s modelci, not the installed hub")\n'
    )
    with modelci_serve(tmp_path / "data", free_port(), cwd=project) as (hub, _):
        model_id = register_source(
            hub,
            files["torchscript"],
            profile=False,
            engine="TORCHSCRIPT",
            inputs=SMALL_INPUTS,
            outputs=[],
        )
        (job,) = graphql(hub, JOBS, id=model_id)["profilingJobs"]["nodes"]
        assert job["kind"] == "CONVERT"
        assert list(follow(hub, job["id"]))[-1]["status"] == "SUCCEEDED", graphql(
            hub, JOBS, id=model_id
        )["profilingJobs"]["nodes"][0]["error"]
        (variant,) = graphql(hub, LINEAGE, id=model_id)["model"]["children"]
        assert variant["engine"] == "ONNX"
