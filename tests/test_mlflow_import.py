"""`modelci import --from-mlflow`: a real `mlflow server` (MLflow 3, in its own tool
environment: MLflow pins a graphql-core this project cannot install beside Strawberry),
models registered into it through MLflow's own client (tests/mlflow_registrar.py), and
imported into a live hub through the command line; what the hub holds is read through
the Python client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from modelci.cli import app
from modelci.cli.mlflow_import import MlflowImport, MlflowRegistry
from modelci.client import ModelHub
from modelci.server.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
REGISTRAR = Path(__file__).with_name("mlflow_registrar.py")


def mlflow_python() -> Path | None:
    """The Python of MLflow's tool environment (see .ci/run), or None."""
    configured = os.environ.get("MODELCI_MLFLOW_PYTHON")
    for python in (configured, ROOT / ".venv" / "tools" / "mlflow" / "bin" / "python"):
        if python and Path(python).exists():
            return Path(python)
    return None


@pytest.fixture(scope="module")
def mlflow_tool() -> Path:
    python = mlflow_python()
    if python is None:
        missing = (
            "MLflow is not installed in .venv/tools/mlflow: run the MLflow step of .ci/run "
            "(or set MODELCI_MLFLOW_PYTHON to the Python of an environment with mlflow 3)"
        )
        if os.environ.get("CI"):  # .ci/run installs it: there, its absence is a failure
            pytest.fail(missing)
        pytest.skip(missing)
    return python


@pytest.fixture(scope="module")
def mlflow_server(mlflow_tool: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` with its defaults (a SQLite store, artifacts served by the tracking
    server), one worker process; its URL once it listens."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner (GenAI jobs) needed
    process = subprocess.Popen(
        [
            str(mlflow_tool.with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=folder,
        start_new_session=True,  # its web server runs as its child: stopped with it
    )
    assert process.stderr is not None
    log: list[str] = []
    listening = started = False
    for line in process.stderr:  # uvicorn says when the app is up and when it listens
        log.append(line)
        listening = listening or "Uvicorn running on" in line
        started = started or "Application startup complete" in line
        if listening and started:
            break
    else:
        raise AssertionError("mlflow server did not start:\n" + "".join(log[-40:]))
    drain = threading.Thread(target=lambda: log.extend(process.stderr or []), daemon=True)
    drain.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        drain.join(timeout=10)


@pytest.fixture(scope="module")
def weights(onnx_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The small network as ONNX (one file, and with its tensors in a file beside it, as
    mlflow.onnx saves by default), as a torch.export program, and pickled whole."""
    import onnx
    import torch
    from networks import SmallConvNet

    folder = tmp_path_factory.mktemp("weights")
    onnx.save_model(
        onnx.load(onnx_model),
        folder / "apart.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="apart.onnx.data",
        size_threshold=0,
    )
    network = SmallConvNet().eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(
        network, (torch.randn(2, 3, 16, 16),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, folder / "small.pt2")
    torch.save(network, folder / "pickled.pth")
    return {
        "onnx": onnx_model,
        "onnx apart": folder / "apart.onnx",
        "onnx data": folder / "apart.onnx.data",
        "pt2": folder / "small.pt2",
        "pickle": folder / "pickled.pth",
    }


@pytest.fixture(scope="module")
def registered(
    mlflow_server: str,
    mlflow_tool: Path,
    weights: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Three registered models in MLflow: one with an ONNX, a torch.export and a pickled
    version, descriptions, tags, runs' metrics and params, two aliases; one whose version 1
    the hub already has; one whose versions the hub cannot take."""
    folder = tmp_path_factory.mktemp("registrar")
    plan = {
        "tracking_uri": mlflow_server,
        "experiment": "vision",
        "workdir": str(folder / "models"),
        "output": str(folder / "registered.json"),
        "models": [
            {
                "name": "SmallConvNet",
                "description": "A small CNN for **16×16** images.",
                "tags": {"team": "vision", "task": "Image_Classification", "dataset": "tiny16"},
                "aliases": {"champion": 1, "challenger": 0},
                "versions": [
                    {
                        "flavor": "onnx",
                        "file": str(weights["onnx"]),
                        "description": "Exported to ONNX.",
                        "tags": {"validated": "yes", "reviewed by": "ana"},
                        "metrics": {"acc": 0.91, "top5": 0.99, "val loss": 0.3},
                        "params": {"lr": "0.1", "epochs": "10"},
                    },
                    {
                        "flavor": "pytorch",
                        "file": str(weights["pt2"]),
                        "metrics": {"acc": 0.93},
                        "params": {"lr": "0.05"},
                    },
                    {"flavor": "pytorch", "file": str(weights["pickle"])},
                ],
            },
            {
                "name": "Busy",
                "versions": [
                    {
                        "flavor": "onnx",
                        "file": str(weights["onnx apart"]),
                        "beside": [str(weights["onnx data"])],
                    }
                ],
            },
            {
                "name": "Odd flavors",
                "versions": [{"flavor": "python_function"}, {"flavor": "escaping"}],
            },
        ],
    }
    subprocess.run(
        [str(mlflow_tool), str(REGISTRAR)],
        input=json.dumps(plan),
        text=True,
        check=True,
        capture_output=True,
        timeout=300,
        env={key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")},
    )
    registered: dict[str, Any] = json.loads(Path(plan["output"]).read_text())
    return registered


def import_from(mlflow: str, hub: str, *flags: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["import", "--from-mlflow", mlflow, "--server", hub, *flags], env={}
    )
    return result.exit_code, result.output


def initializers(path: Path) -> dict[str, bytes]:
    """An ONNX model's initializers' bytes, read from the one file (nothing beside it)."""
    import onnx
    from onnx.numpy_helper import to_array

    model = onnx.load(path, load_external_data=False)
    return {tensor.name: to_array(tensor).tobytes() for tensor in model.graph.initializer}


def hub_state(hub: str) -> tuple[dict[tuple[str, int], Any], dict[str, str]]:
    with ModelHub(hub) as client:
        models = {(model.architecture, model.version): model for model in client.get_models()}
        aliases = {alias.alias: alias.model_id for alias in client.aliases()}
    return models, aliases


def test_an_mlflow_registry_moves_into_the_hub_in_one_command(
    hub: str, mlflow_server: str, registered: dict[str, Any], onnx_model: Path, tmp_path: Path
) -> None:
    with ModelHub(hub) as client:  # the hub already holds a Busy version 1
        busy = client.register_model(
            onnx_model,
            architecture="Busy",
            framework="ONNX",
            engine="ONNX",
            task="Other",
            dataset="unknown",
            version=1,
        )

    # --dry-run reads everything, says what it would do, and writes nothing.
    code, output = import_from(mlflow_server, hub, "--dry-run")
    assert code == 0, output
    assert "would copy SmallConvNet version 1: an ONNX model" in output
    assert "would copy SmallConvNet version 2: a torch.export archive" in output
    assert "skipped SmallConvNet version 3: a pickled PyTorch model" in output
    assert "would set alias SmallConvNet.champion → SmallConvNet version 2" in output
    assert "dry run, nothing written: 6 versions" in output
    models, aliases = hub_state(hub)
    assert list(models) == [("Busy", 1)] and aliases == {}

    code, output = import_from(mlflow_server, hub)
    assert code == 0, output
    summary = output.strip().splitlines()[-1]
    assert summary == (
        f"6 versions in {mlflow_server}: 3 copied, 0 copied before, 3 skipped, 0 failed; "
        "2 aliases set, 0 already set, 0 skipped"
    )
    # Each version not copied is listed with its reason.
    assert "skipped SmallConvNet version 3: a pickled PyTorch model: unpickling runs" in output
    assert "--allow-pickle copies it" in output
    assert "skipped Odd flavors version 1: flavors python_function" in output
    assert (
        "skipped Odd flavors version 2: its MLmodel file names the ONNX model "
        "'../../../../../etc/passwd', no plain relative path" in output
    )
    # What the hub's rules cannot hold is named, the rest copied.
    assert "left out metric 'val loss'" in output and "left out tag 'reviewed by'" in output

    models, aliases = hub_state(hub)
    assert set(models) == {("SmallConvNet", 1), ("SmallConvNet", 2), ("Busy", 1), ("Busy", 2)}
    first, second = models["SmallConvNet", 1], models["SmallConvNet", 2]
    assert (first.framework.value, first.engine.value) == ("ONNX", "ONNX")
    assert (second.framework.value, second.engine.value) == ("PyTorch", "PYTORCH")
    assert first.task.value == "Image_Classification" and first.dataset == "tiny16"
    assert {m.name: m.value for m in first.metric} == {"acc": 0.91, "top5": 0.99}
    assert {p.name: p.value for p in first.params} == {"lr": "0.1", "epochs": "10"}
    assert {m.name: m.value for m in second.metric} == {"acc": 0.93}
    assert {t.name: t.value for t in first.tags} == {
        "team": "vision",
        "task": "Image_Classification",
        "dataset": "tiny16",
        "validated": "yes",
        "mlflow.model_version": f"{mlflow_server}/#/models/SmallConvNet/versions/1",
    }
    assert first.description == "A small CNN for **16×16** images.\n\nExported to ONNX."
    assert second.description == "A small CNN for **16×16** images."
    runs = registered["runs"]["SmallConvNet"]
    assert first.source is not None and second.source is not None
    assert (first.source.run_id, second.source.run_id) == (runs[0], runs[1])
    assert first.source.uri.startswith(f"{mlflow_server}/#/experiments/")
    assert first.source.uri.endswith(f"/runs/{runs[0]}")
    assert aliases == {"SmallConvNet.champion": second.id, "SmallConvNet.challenger": first.id}
    # Busy's version 1 is taken here: MLflow's version 1 became the next free one.
    assert models["Busy", 1].id == busy.id
    assert {t.name: t.value for t in models["Busy", 2].tags} == {
        "mlflow.model_version": f"{mlflow_server}/#/models/Busy/versions/1"
    }
    # The weights are MLflow's: Busy's tensors, kept in a file beside its model, are in it.
    with ModelHub(hub) as client:
        first_weight = client.download_weight(first.id, tmp_path / "first.onnx")
        busy_weight = client.download_weight(models["Busy", 2].id, tmp_path / "busy.onnx")
    assert first_weight.read_bytes() == onnx_model.read_bytes()
    assert initializers(busy_weight) == initializers(onnx_model)

    # A second run finds every copy and adds nothing.
    code, output = import_from(mlflow_server, hub)
    assert code == 0, output
    assert output.strip().splitlines()[-1] == (
        f"6 versions in {mlflow_server}: 0 copied, 3 copied before, 3 skipped, 0 failed; "
        "0 aliases set, 2 already set, 0 skipped"
    )
    assert hub_state(hub) == (models, aliases)

    # An alias moved in MLflow moves here on the next run; nothing else changes.
    moved = httpx.post(
        f"{mlflow_server}/api/2.0/mlflow/registered-models/alias",
        json={"name": "SmallConvNet", "alias": "champion", "version": "1"},
    )
    assert moved.status_code == 200, moved.text
    code, output = import_from(mlflow_server, hub)
    assert code == 0, output
    assert "set alias SmallConvNet.champion → SmallConvNet version 1" in output
    assert output.strip().endswith("1 alias set, 1 already set, 0 skipped")
    assert hub_state(hub) == (models, aliases | {"SmallConvNet.champion": first.id})

    # --allow-pickle sends the pickle, which a hub started without --allow-pickle refuses.
    code, output = import_from(mlflow_server, hub, "--allow-pickle")
    assert code == 1, output
    assert "FAILED SmallConvNet version 3: the hub refused it: weight: a pickled" in output
    assert hub_state(hub)[0].keys() == models.keys()


def test_a_weight_over_the_cap_is_not_downloaded_whole(
    hub: str, mlflow_server: str, registered: dict[str, Any]
) -> None:
    with MlflowRegistry(mlflow_server) as registry, ModelHub(hub) as client:
        summary = MlflowImport(registry, client, dry_run=True, max_weight_bytes=1000).run()
    outcomes = {(o.name, o.version): o for o in summary.outcomes}
    pickled = outcomes["SmallConvNet", "3"]  # 6 KiB: never copied, so read again each run
    assert (pickled.action, pickled.detail) == ("skipped", "data/model.pth is over 1000 bytes")


def test_an_mlflow_url_that_is_none_or_unreachable_is_said_so(hub: str) -> None:
    code, output = import_from("ftp://mlflow.example", hub)
    assert code == 2 and "'ftp://mlflow.example' is no MLflow server's URL" in output
    code, output = import_from(f"http://127.0.0.1:{free_port()}", hub)
    assert code == 8 and "cannot reach the MLflow server at http://127.0.0.1:" in output
