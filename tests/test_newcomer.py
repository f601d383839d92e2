"""What a newcomer meets first, through the `modelci` command and the Python client
against a live `modelci serve`: what a registration queued, a next step that fits each
refusal, errors in the words of the caller's language, help that reads as sentences."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PREFLIGHT, REGISTER, model_input, modelci_serve, multipart
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.client import DataType, ModelHub, ModelInputFormat
from modelci.core.errors import BadUserInput, Conflict, NotFound
from modelci.server.embedded import free_port

runner = CliRunner()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hub with no worker: what a registration queues stays queued for the tests."""
    with modelci_serve(tmp_path_factory.mktemp("hub"), free_port(), workers="0") as (url, _):
        yield url


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small model saved as TorchScript and as a plain pickle (torch.save)."""
    import torch

    folder = tmp_path_factory.mktemp("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, torch.randn(1, 4)), str(folder / "scripted.pt"))
        torch.save(model, folder / "pickled.pt")
    return {"torchscript": folder / "scripted.pt", "pickle": folder / "pickled.pt"}


def modelci(hub: str, *arguments: str) -> Any:
    return runner.invoke(cli, [*arguments, "--server", hub], env={"COLUMNS": "200"})


def next_step(stderr: str) -> str:
    """The `next:` line of a refusal, joined if the terminal wrapped it."""
    found = re.search(r"next: (.*)", stderr, re.DOTALL)
    assert found, stderr
    return " ".join(found[1].split())


def test_register_says_which_jobs_it_queued_and_how_to_follow_them(
    hub: str, onnx_model: Path
) -> None:
    result = modelci(hub, "register", str(onnx_model), "--architecture", "Queued", "--profile")
    assert result.exit_code == 0, result.output
    model_id = re.search(r"registered (\w+)", result.stdout)[1]  # type: ignore[index]
    conversion = re.search(r"queued conversion job (\w+) \(QUEUED\)", result.stdout)
    profiling = re.search(r"queued profiling job (\w+) \(QUEUED\)", result.stdout)
    assert conversion and profiling, result.stdout
    assert f"`modelci jobs --model {model_id}`" in result.stdout

    listed = modelci(hub, "jobs", "--model", model_id, "--json")
    assert listed.exit_code == 0, listed.output
    assert {job["id"] for job in json.loads(listed.stdout)} == {conversion[1], profiling[1]}

    stored = modelci(hub, "register", str(onnx_model), "--architecture", "Stored", "--no-convert")
    assert stored.exit_code == 0 and "queued" not in stored.stdout, stored.output


def test_each_refusal_of_a_registration_has_a_next_step_about_it(
    hub: str, onnx_model: Path, torch_files: dict[str, Path]
) -> None:
    refusals = {
        "bad task": ["register", str(onnx_model), "--architecture", "A", "--task", "Cooking"],
        "onnx as torchscript": [
            "register",
            str(onnx_model),
            "--architecture",
            "A",
            "--framework",
            "PyTorch",
            "--engine",
            "TORCHSCRIPT",
        ],
        "pickle": ["register", str(torch_files["pickle"]), "--architecture", "A"],
        "no inputs": ["register", str(torch_files["torchscript"]), "--architecture", "A"],
    }
    steps = {}
    for what, arguments in refusals.items():
        result = modelci(hub, *arguments)
        assert result.exit_code == 2, (what, result.output)
        steps[what] = next_step(result.stderr)

    assert steps["bad task"].startswith("--task is one of Image_Classification,")
    assert "register it with --engine ONNX" in steps["onnx as torchscript"]
    assert "torch.jit.save" in steps["pickle"] and "--allow-pickle" in steps["pickle"]
    assert "--input NAME:SHAPE:DTYPE" in steps["no inputs"]
    # Only the refusal about inputs speaks of inputs.
    assert [what for what, step in steps.items() if "--input" in step] == ["no inputs"]


def test_show_says_what_a_reference_is_not(hub: str) -> None:
    result = modelci(hub, "show", "12345")
    assert result.exit_code == 4
    assert "'12345' is neither a model id (24 hexadecimal digits) nor an alias" in result.stderr
    assert "`modelci alias ls`" in next_step(result.stderr)


def test_cli_output_agrees_in_number_and_article(hub: str, onnx_model: Path) -> None:
    with ModelHub(hub) as client:
        model = client.register_model(
            onnx_model,
            architecture="Counted",
            framework="ONNX",
            engine="ONNX",
            version=1,
            dataset="d",
            task="Text_Generation",
            convert=False,
        )
        client.register_dynamic_profiling_result(model.id, measured())
    recommended = modelci(hub, "recommend", "--task", "Text_Generation")
    assert recommended.exit_code == 0, recommended.output
    assert "1 option from 1 model," in recommended.stdout

    converted = modelci(hub, "convert", model.id, "--to", "TORCHSCRIPT", "--no-follow")
    assert converted.exit_code == 2
    assert "targets: the ONNX format converts to TRT, not TORCHSCRIPT" in converted.stderr
    assert "give --to an engine the message lists" in next_step(converted.stderr)


def test_help_keeps_each_sentence_on_one_line() -> None:
    overview = runner.invoke(cli, ["--help"], env={"COLUMNS": "200"})
    assert overview.exit_code == 0
    assert (
        "List models, newest first; with a measured condition (--device, --batch, --p99, …), "
        "those with one dynamic result that meets all of them; with --where, those the search "
        "finds too." in overview.stdout
    )
    worker = runner.invoke(cli, ["worker", "--help"], env={"COLUMNS": "200"})
    assert (
        "It claims in two lanes at once: profiling jobs one at a time, conversions beside "
        "them, so that a long profile never holds a conversion behind it." in worker.stdout
    )


def test_the_python_client_speaks_python(hub: str) -> None:
    with ModelHub(hub) as client:
        model = client.register_model(
            b"weights",
            architecture="Pythonic",
            framework="PyTorch",
            engine="NONE",
            version=1,
            dataset="d",
            task="Other",
            # As the CLI spells them, as well as the schema's TYPE_FP32 and FORMAT_NCHW.
            inputs=[
                {"name": "input", "shape": [-1, 3, 8, 8], "dtype": "FP32", "format": "NCHW"},
                {"name": "mask", "shape": [-1, 8], "dtype": "TYPE_BOOL"},
            ],
            convert=False,
        )
        first = model.inputs[0]
        assert (first.dtype, first.format) == (DataType.TYPE_FP32, ModelInputFormat.FORMAT_NCHW)
        assert model.inputs[1].dtype is DataType.TYPE_BOOL

        with pytest.raises(NotFound) as missing:
            client.update_dynamic_profiling_result(model.id, measured())
        assert "force_insert=True" in missing.value.message
        assert "forceInsert" not in str(missing.value)

        client.set_alias("pythonic-prod", model.id)
        with pytest.raises(Conflict) as named:
            client.delete_model(model.id)
        assert f'hub.delete_model("{model.id}", cascade=True)' in named.value.message
        assert "(hub.set_alias)" in named.value.message and "deleteModel" not in str(named.value)

        with pytest.raises(NotFound) as no_alias:
            client.get_model(alias="no-such-name")
        assert "hub.aliases() lists them" in no_alias.value.message

        with pytest.raises(BadUserInput) as sizes:
            client.profile_model(model.id, batch_sizes=[0])
        assert sizes.value.message.startswith("batch_sizes: ")

        with pytest.raises(BadUserInput) as task:
            client.register_model(
                b"w", architecture="P", framework="PyTorch", engine="NONE", task="Cooking"
            )
        assert "dataset: Field required" in task.value.message  # the keywords it takes
        assert "task: Input should be 'Image_Classification'" in task.value.message
        assert "input." not in task.value.message


def measured() -> dict[str, Any]:
    timing = {"avg": 0.01, "p50": 0.01, "p95": 0.012, "p99": 0.013}
    return {
        "ip": "10.0.0.1",
        "device_id": "cpu",
        "device_name": "CPU",
        "batch": 1,
        "memory": {"total_memory": 1, "memory_usage": 1, "utilization": 0.5},
        "latency": {
            name: timing
            for name in (
                "initialization_latency",
                "preprocess_latency",
                "inference_latency",
                "postprocess_latency",
            )
        },
        "throughput": {
            name: 100.0
            for name in (
                "batch_formation_throughput",
                "preprocess_throughput",
                "inference_throughput",
                "postprocess_throughput",
            )
        },
    }


def test_damaged_files_are_called_damaged_and_a_state_dict_weights_only(
    hub: str, onnx_model: Path, torch_files: dict[str, Path], tmp_path: Path
) -> None:
    """Truncated .pt, .onnx and .pt2 files were told "its content says nothing of its
    framework and engine" with a hint to store them as opaque bytes, and a torch.save of a
    state_dict was called "a pickled PyTorch model"."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    exported = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(1, 4),)), str(exported))
    for name, whole in (
        ("torchscript", torch_files["torchscript"]),
        ("onnx", onnx_model),
        ("pt2", exported),
    ):
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        result = modelci(hub, "register", str(cut), "--architecture", f"Cut{name}")
        assert result.exit_code == 2, result.output
        said = " ".join(result.stderr.split())
        assert "damaged, most likely cut short" in said, said
        assert "NONE" not in said and "--engine" not in said
        # The hub says the same to any caller that declares the format.
        engine = {"torchscript": "TORCHSCRIPT", "onnx": "ONNX", "pt2": "PYTORCH"}[name]
        framework = "ONNX" if name == "onnx" else "PyTorch"
        fields = model_input(architecture=f"Declared{name}", engine=engine, framework=framework)
        request = multipart(REGISTER, {"input": fields}, {"weight": ("m", cut.read_bytes())})
        body = httpx.post(f"{hub}/graphql", headers=PREFLIGHT, **request).json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert "damaged, most likely cut short" in body["errors"][0]["message"], body

    weights = tmp_path / "weights.pt"
    torch.save(model.state_dict(), weights)
    result = modelci(hub, "register", str(weights), "--architecture", "StateDict")
    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())
    assert "weights only" in said and "torch.export.save" in said, said
    assert "--allow-pickle" not in said
