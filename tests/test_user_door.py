"""The user's door: a ResNet-18 built in code, as TorchScript, as a torch.export archive
and as ONNX, through the `modelci` CLI and the Python client against a live hub.

The network is ResNet-18 at full width (11.7 M parameters, BasicBlocks [2, 2, 2, 2],
64 to 512 channels); its declared input is 64×64 rather than 224×224, which keeps the
profiling on a 2-core machine to seconds (the weights, and so every upload and
download, are full size). No mocks: `modelci serve` on the embedded database with its
own profiling worker, the CLI through typer's runner, the client over HTTP.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import modelci_serve
from networks import ResNet18
from torch import nn
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.client import (
    DataType,
    Engine,
    Framework,
    JobKind,
    JobStatus,
    Metric,
    ModelHub,
    ModelInputFormat,
    ModelStatus,
    Scope,
    Task,
    WeightFormat,
)
from modelci.core.errors import BadUserInput, Conflict, NotFound
from modelci.graphql_client import DeviceKind
from modelci.server.embedded import free_port

SIDE = 64
INPUT = f"x:-1x3x{SIDE}x{SIDE}:FP32"
runner = CliRunner()


@dataclass
class Files:
    torchscript: Path
    export: Path
    onnx: Path
    pickled: Path
    parameters: int


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    folder = tmp_path_factory.mktemp("resnet18")
    torch.manual_seed(0)
    net = ResNet18().eval()
    example = torch.randn(2, 3, SIDE, SIDE)
    made = Files(
        folder / "resnet18.pt",
        folder / "resnet18.pt2",
        folder / "resnet18.onnx",
        folder / "resnet18-pickled.pth",
        sum(p.numel() for p in net.parameters()),
    )
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(net, example), made.torchscript)
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.export.save(
        torch.export.export(net, (example,), dynamic_shapes={"x": {0: batch}}), made.export
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            str(made.onnx),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
    torch.save(net, made.pickled)
    return made


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hub with its own profiling worker, measuring briefly; pickles allowed, so that
    every weight format can be held at once."""
    quick = {
        "profile_window_s": "0.05",
        "profile_min_runs": "3",
        "profile_max_windows": "4",
        "profile_threads": "1",
        "allow_pickle": "true",
    }
    with modelci_serve(tmp_path_factory.mktemp("hub"), free_port(), **quick) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(hub: str) -> Iterator[ModelHub]:
    with ModelHub(hub) as connected:
        yield connected


def modelci(hub: str, *arguments: str) -> tuple[int, str, str]:
    """A CLI command against the hub: (exit code, stdout, stderr), in an 80-column
    terminal."""
    result = runner.invoke(cli, [*arguments, "--server", hub], env={"COLUMNS": "80"})
    return result.exit_code, result.stdout, result.stderr


def registered(hub: str, path: Path, *options: str) -> dict[str, Any]:
    code, out, err = modelci(hub, "register", str(path), *options, "--json")
    assert code == 0, err
    model: dict[str, Any] = json.loads(out)
    return model


def test_the_cli_from_register_to_rm(hub: str, files: Files, tmp_path: Path) -> None:
    common = ("--architecture", "ResNet18", "--task", "Image_Classification", "--dataset", "d")
    scripted = registered(hub, files.torchscript, *common, "--input", INPUT, "--no-convert")
    assert (scripted["framework"], scripted["engine"]) == ("PyTorch", "TORCHSCRIPT")
    assert scripted["weight"]["format"] == "TORCHSCRIPT"
    assert scripted["inputs"][0] == {
        "name": "x",
        "shape": [-1, 3, SIDE, SIDE],
        "dtype": "TYPE_FP32",
        "format": "FORMAT_NONE",
    }
    exported = registered(hub, files.export, *common, "--input", INPUT, "--no-convert")
    assert (exported["engine"], exported["weight"]["format"]) == ("PYTORCH", "TORCH_EXPORT")
    from_onnx = registered(hub, files.onnx, *common, "--no-convert")
    assert (from_onnx["framework"], from_onnx["engine"]) == ("ONNX", "ONNX")
    assert from_onnx["inputs"][0]["shape"] == [-1, 3, SIDE, SIDE]  # from the graph
    ids = [scripted["id"], exported["id"], from_onnx["id"]]

    # Listing and showing a hub that holds TorchScript and torch.export models.
    code, out, err = modelci(hub, "ls")
    assert code == 0, err
    assert all(model_id in out for model_id in ids)  # whole ids, at 80 columns
    code, out, _ = modelci(hub, "ls", "--architecture", "ResNet18", "--json")
    assert code == 0 and {m["id"] for m in json.loads(out)} == set(ids)
    code, out, _ = modelci(hub, "ls", "--engine", "TORCHSCRIPT", "--version", "1", "--json")
    assert [m["id"] for m in json.loads(out) if m["architecture"] == "ResNet18"] == ids[:1]
    code, out, _ = modelci(hub, "ls", "--dataset", "d", "--status", "CONVERTED", "--json")
    assert code == 0 and json.loads(out) == []
    code, _, err = modelci(hub, "ls", "--status", "SHIPPED")
    assert code == 2 and "PUBLISHED" in err  # the valid values are listed
    code, out, err = modelci(hub, "show", scripted["id"])
    assert code == 0, err
    assert scripted["id"] in out and "TORCHSCRIPT" in out and f"x:-1x3x{SIDE}x{SIDE}" in out

    # Downloads keep the hub's name, into a folder made for them, never over a file.
    code, out, err = modelci(hub, "download", scripted["id"], "-o", f"{tmp_path}/weights/")
    assert code == 0, err
    saved = tmp_path / "weights" / files.torchscript.name
    assert saved.read_bytes() == files.torchscript.read_bytes()
    code, _, err = modelci(hub, "download", scripted["id"], "-o", f"{tmp_path}/weights/")
    assert code == 1 and "--force" in err
    code, _, err = modelci(hub, "download", scripted["id"], "-o", str(saved), "--force")
    assert code == 0, err
    code, _, err = modelci(hub, "download", exported["id"], "-o", str(tmp_path / "copy.pt2"))
    assert code == 0 and (tmp_path / "copy.pt2").read_bytes() == files.export.read_bytes()

    # Profiling, followed live, then its results in order and the job in the list.
    code, out, err = modelci(
        hub, "profile", scripted["id"], "--batch", "2", "--batch", "1", "--json"
    )
    assert code == 0, err
    job = json.loads(out)
    assert job["status"] == "SUCCEEDED" and job["kind"] == "PROFILE"
    code, out, _ = modelci(hub, "show", scripted["id"], "--json")
    shown = json.loads(out)
    assert shown["profile_result"]["static_result"]["parameters"] == files.parameters
    dynamic = shown["profile_result"]["dynamic_results"]
    order = [(r["device_id"], r["batch"]) for r in dynamic]
    assert order == sorted(order) and {batch for _, batch in order} == {1, 2}
    code, out, _ = modelci(hub, "show", scripted["id"])
    assert "dynamic" in out and "static" in out
    code, out, _ = modelci(hub, "jobs", "--model", scripted["id"], "--json")
    assert [j["id"] for j in json.loads(out)] == [job["id"]]
    code, out, _ = modelci(hub, "jobs", "--model", scripted["id"])
    assert code == 0 and job["id"] in out

    # Conversion makes a variant; rm says --cascade, and --cascade deletes both.
    source = registered(hub, files.torchscript, *common, "--version", "2", "--input", INPUT)
    with ModelHub(hub) as client:
        (conversion,) = client.get_jobs(model_id=source["id"])
        assert client.wait_for_job(conversion.id, timeout_s=600).status is JobStatus.SUCCEEDED
        variants = client.get_variants(source["id"])
    assert [v.engine for v in variants] == [Engine.ONNX]
    code, out, _ = modelci(hub, "ls", "--status", "CONVERTED", "--version", "2", "--json")
    assert [m["id"] for m in json.loads(out)] == [variants[0].id]
    code, out, _ = modelci(hub, "show", source["id"])
    assert variants[0].id in out
    code, _, err = modelci(hub, "rm", source["id"])
    # The CLI's own flag, as a command to run, and the API's argument left intact.
    assert code == 5 and f"modelci rm {source['id']} --cascade" in err, err
    assert ", --cascade)" not in err, err
    code, out, err = modelci(hub, "rm", source["id"], "--cascade")
    assert code == 0, err
    code, _, err = modelci(hub, "show", variants[0].id)
    assert code == 4 and "next:" in err

    # A registered version again is a conflict that says what to do.
    again = ("--version", str(from_onnx["version"]))
    code, _, err = modelci(hub, "register", str(files.onnx), *common, *again, "--no-convert")
    assert code == 5 and "--version" in err


def test_malformed_shapes_are_refused_before_anything_is_sent(hub: str, files: Files) -> None:
    for spec in ("x:1x3:FP33", "x-1x3x64x64:FP32", "x:1xx3:FP32", "x:0x3:FP32"):
        code, _, err = modelci(
            hub, "register", str(files.onnx), "--architecture", "Bad", "--input", spec
        )
        assert code == 2 and "--input" in err, (spec, err)
    code, out, _ = modelci(hub, "ls", "--architecture", "Bad", "--json")
    assert json.loads(out) == []


def test_the_python_client_with_every_format_and_engine(
    client: ModelHub, files: Files, tmp_path: Path
) -> None:
    common: dict[str, Any] = {"architecture": "AllAtOnce", "dataset": "d", "task": "Other"}
    by_format = {
        WeightFormat.TORCHSCRIPT: client.register_model(
            files.torchscript,
            convert=False,
            framework=Framework.PyTorch,
            engine=Engine.TORCHSCRIPT,
            version=1,
            inputs=[{"name": "x", "shape": [-1, 3, SIDE, SIDE]}],
            **common,
        ),
        WeightFormat.TORCH_EXPORT: client.register_model(
            files.export,
            convert=False,
            framework="PyTorch",
            engine="PYTORCH",
            version=2,
            inputs=[{"name": "x", "shape": [-1, 3, SIDE, SIDE]}],
            **common,
        ),
        WeightFormat.ONNX: client.register_model(
            files.onnx, convert=False, framework="ONNX", engine="ONNX", version=3, **common
        ),
        WeightFormat.TORCH_PICKLE: client.register_model(
            files.pickled,
            convert=False,
            framework="PyTorch",
            engine="PYTORCH",
            version=4,
            inputs=[{"name": "x", "shape": [-1, 3, SIDE, SIDE]}],
            **common,
        ),
    }
    for weight_format, model in by_format.items():
        assert model.weight.format is weight_format
    # Engines the hub stores without reading: the bytes are kept as they are.
    for version, engine in enumerate((Engine.NONE, Engine.TFS, Engine.TRT, Engine.TVM), 10):
        client.register_model(
            b"opaque " + engine.value.encode(),
            convert=False,
            framework="TensorFlow" if engine is Engine.TFS else "PyTorch",
            engine=engine,
            version=version,
            **common,
        )
    client.register_model(
        b"custom", convert=False, framework="XGBoost", engine="CUSTOMIZED", version=20, **common
    )

    held = client.get_models(architecture="AllAtOnce")
    # An AOTInductor package comes in only as a conversion's variant (test_conversion).
    assert {model.engine for model in held} == set(Engine) - {Engine.AOTINDUCTOR}
    assert {m.weight.format for m in held} == set(WeightFormat) - {WeightFormat.AOTI_PACKAGE} | {
        None
    }
    for model in held:  # each reads back whole, one at a time and in the listing
        assert client.get_by_id(model.id) == model
    code, out, err = modelci(client.url, "ls", "--architecture", "AllAtOnce")
    assert code == 0 and all(model.id in out for model in held), err
    for model in held:
        code, _, err = modelci(client.url, "show", model.id)
        assert code == 0, err

    scripted = by_format[WeightFormat.TORCHSCRIPT]
    updated = client.update_model(
        scripted.id,
        creator="alice",
        metric=[{"name": Metric.acc, "value": 0.69}],
        model_status=[ModelStatus.PUBLISHED],
    )
    assert (updated.creator, updated.metric[0].value) == ("alice", 0.69)
    assert updated.weight == scripted.weight  # the weight is untouched

    static = {"parameters": files.parameters, "flops": 2, "memory": 3, "mread": 1, "mwrite": 1}
    assert (
        client.register_static_profiling_result(
            scripted.id, {**static, "mrw": 2}
        ).profile_result.static_result.parameters  # type: ignore[union-attr]
        == files.parameters
    )
    timing = {"avg": 0.01, "p50": 0.01, "p95": 0.02, "p99": None}
    result = {
        "ip": "10.0.0.7",
        "device_id": "cpu",
        "device_name": "CPU",
        "batch": 8,
        "memory": {"total_memory": 1 << 33, "memory_usage": 1 << 28, "utilization": 0.4},
        "latency": dict.fromkeys(
            (
                "initialization_latency",
                "preprocess_latency",
                "inference_latency",
                "postprocess_latency",
            ),
            timing,
        ),
        "throughput": dict.fromkeys(
            (
                "batch_formation_throughput",
                "preprocess_throughput",
                "inference_throughput",
                "postprocess_throughput",
            ),
            800.0,
        ),
    }
    added = client.register_dynamic_profiling_result(scripted.id, result)
    (stored,) = added.profile_result.dynamic_results
    assert (stored.batch, stored.latency.inference_latency.p50) == (8, 0.01)
    with pytest.raises(Conflict):
        client.register_dynamic_profiling_result(scripted.id, result)
    # An earlier result read back is an input too.
    faster = stored.model_copy(
        update={"throughput": stored.throughput.model_copy(update={"inference_throughput": 1600.0})}
    )
    changed = client.update_dynamic_profiling_result(scripted.id, faster)
    assert changed.profile_result.dynamic_results[0].throughput.inference_throughput == 1600.0
    with pytest.raises(NotFound):
        client.update_dynamic_profiling_result(scripted.id, {**result, "batch": 16})
    forced = client.update_dynamic_profiling_result(
        scripted.id, {**result, "batch": 16}, force_insert=True
    )
    assert len(forced.profile_result.dynamic_results) == 2
    left = client.delete_dynamic_profiling_result(scripted.id, "10.0.0.7", "cpu")
    assert left.profile_result.dynamic_results == []

    seen: list[int] = []
    path = client.download_weight(
        scripted.id, tmp_path / "into", progress=lambda done, _: seen.append(done)
    )
    assert path.read_bytes() == files.torchscript.read_bytes() and seen[-1] == path.stat().st_size
    into = client.download_weight(by_format[WeightFormat.ONNX].id, f"{tmp_path}/folder/")
    assert into.parent == tmp_path / "folder" and into.name.endswith(".onnx")
    with pytest.raises(FileExistsError):
        client.download_weight(scripted.id, path)
    assert (
        hashlib.sha256(into.read_bytes()).hexdigest() == by_format[WeightFormat.ONNX].weight.sha256
    )

    for model in held:
        assert client.delete_model(model.id).id == model.id
    with pytest.raises(NotFound):
        client.get_by_id(scripted.id)
    assert client.get_models(architecture="AllAtOnce") == []


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelHub]:
    """A hub with no worker: jobs wait until this test claims them."""
    with (
        modelci_serve(tmp_path_factory.mktemp("bare"), free_port(), workers="0") as (url, _),
        ModelHub(url) as connected,
    ):
        yield connected


def test_every_enum_value_survives_a_round_trip(bare: ModelHub) -> None:
    base: dict[str, Any] = {
        "architecture": "Enums",
        "framework": "PyTorch",
        "engine": "NONE",
        "dataset": "d",
        "task": "Other",
    }
    every = {
        "metric": [{"name": name, "value": index / 10} for index, name in enumerate(Metric)],
        "model_status": list(ModelStatus),
        "inputs": [
            {"name": f"in_{dtype.value}", "shape": [-1, 4], "dtype": dtype, "format": layout}
            for dtype, layout in zip(DataType, [*ModelInputFormat] * len(DataType), strict=False)
        ],
        "outputs": [
            {"name": f"out_{layout.value}", "shape": [1], "format": layout}
            for layout in ModelInputFormat
        ],
    }
    model = bare.register_model(b"w", convert=False, version=1, **base, **every)
    assert [m.name for m in model.metric] == list(Metric)
    assert model.model_status == list(ModelStatus)
    assert [shape.dtype for shape in model.inputs] == list(DataType)
    assert {shape.format for shape in model.inputs} == set(ModelInputFormat)
    assert [shape.format for shape in model.outputs] == list(ModelInputFormat)
    assert bare.get_by_id(model.id) == model

    for version, task in enumerate(Task, start=2):
        made = bare.register_model(b"w", convert=False, version=version, **{**base, "task": task})
        assert made.task is task
        assert [m.id for m in bare.get_models(task=task, version=version)] == [made.id]
    for framework in Framework:
        changed = bare.update_model(model.id, framework=framework)
        assert changed.framework is framework
        assert [m.id for m in bare.get_models(framework=framework.value, version=1)] == [model.id]
    for engine in Engine:
        changed = bare.update_model(model.id, engine=engine)
        assert bare.get_by_id(model.id).engine is engine is changed.engine
    for status in ModelStatus:
        assert model.id in {m.id for m in bare.get_models(status=status)}

    # Domain enums (the server's own) are sent by name, as the schema spells them.
    from modelci.core.domain import Engine as DomainEngine
    from modelci.core.domain import Task as DomainTask

    assert bare.update_model(model.id, engine=DomainEngine.ONNX).engine is Engine.ONNX
    assert bare.get_models(task=DomainTask.Other, architecture="Enums", version=1)[0].id == model.id
    with pytest.raises(BadUserInput, match="Image_Classification"):
        bare.update_model(model.id, task="Cat_Pictures")

    # Jobs: both kinds, and every status, read back and filtered by.
    bare.update_model(model.id, engine="NONE")
    profile = bare.profile_model(model.id, batch_sizes=[1])
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(nn.Linear(4, 2)), buffer)
    tiny = bare.register_model(
        buffer.getvalue(),
        convert=False,
        **{**base, "architecture": "TinyScript", "engine": "TORCHSCRIPT", "version": 1},
        inputs=[{"name": "x", "shape": [-1, 4]}],
    )
    convert = bare.convert_model(tiny.id, targets=[Engine.ONNX])
    assert (profile.kind, convert.kind) == (JobKind.PROFILE, JobKind.CONVERT)
    assert convert.targets == [Engine.ONNX]
    devices = [
        {
            "host": "h",
            "ip": "10.0.0.9",
            "deviceId": f"{kind.value.lower()}:0",
            "name": kind.value,
            "kind": kind,
            "totalMemory": 1 << 30,
        }
        for kind in DeviceKind
    ]
    from modelci.client import DeviceInput, as_input

    claimed = []
    for _ in range(2):
        job = bare.api.claim_profiling_job(
            worker="w",
            devices=[as_input(DeviceInput, d, "devices") for d in devices],
            lease_seconds=60,
        ).claim_profiling_job
        assert job is not None
        claimed.append(job.id)
    assert {d.kind for d in bare.get_devices()} == set(DeviceKind)
    bare.api.finish_profiling_job(id=claimed[0], worker="w", retryable=False)
    bare.api.finish_profiling_job(id=claimed[1], worker="w", error="boom", retryable=False)
    running = bare.profile_model(model.id)
    assert (
        bare.api.claim_profiling_job(
            worker="w2", devices=[as_input(DeviceInput, devices[0], "devices")], lease_seconds=60
        ).claim_profiling_job
        is not None
    )
    queued = bare.profile_model(model.id, batch_sizes=[2])
    cancelled = bare.cancel_job(bare.profile_model(model.id).id)
    assert cancelled.status is JobStatus.CANCELLED
    statuses = {job.id: job.status for job in bare.get_jobs()}
    assert set(statuses.values()) == set(JobStatus)
    assert statuses[running.id] is JobStatus.RUNNING and statuses[queued.id] is JobStatus.QUEUED
    for status in JobStatus:
        found = bare.get_jobs(status=status)
        assert found and {job.status for job in found} == {status}

    # Scopes, through the token API (auth is off on loopback: the caller is admin).
    made = bare.create_token("every-scope", list(Scope))
    assert set(made.api_token.scopes) == set(Scope) and made.token
    (listed,) = [t for t in bare.get_tokens() if t.id == made.api_token.id]
    assert set(listed.scopes) == set(Scope) and not listed.revoked
    assert bare.revoke_token(made.api_token.id) == [made.api_token.id]
    with pytest.raises(BadUserInput, match="admin"):
        bare.create_token("bad", ["root"])


def test_an_unreachable_hub_says_what_to_do_next() -> None:
    code, _, err = modelci(f"http://127.0.0.1:{free_port()}", "ls")
    assert code == 8 and "modelci serve" in err


def test_the_worker_takes_its_hub_from_modelci_server(hub: str) -> None:
    """`modelci worker` reads --server from MODELCI_SERVER like every other command."""
    result = runner.invoke(cli, ["worker", "--help"], env={"MODELCI_SERVER": hub, "COLUMNS": "200"})
    assert result.exit_code == 0 and "MODELCI_SERVER" in result.stdout
