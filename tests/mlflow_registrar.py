"""Registers models into an MLflow registry through MLflow's own client, as a team using
MLflow does: run in MLflow's environment (the standard library and mlflow only: neither
modelci nor torch is there), by tests/test_mlflow_import.py.

Reads a JSON plan on standard input:
    {"tracking_uri": ..., "experiment": ..., "workdir": ...,
     "models": [{"name", "description", "tags": {}, "aliases": {alias: version index},
                 "versions": [{"flavor": "onnx" | "pytorch" | "python_function" | "escaping",
                               "file": path or null, "beside": [paths of files that go
                               beside it], "description", "tags": {},
                               "metrics": {}, "params": {}}]}]}
and writes {"runs": {name: [run id of each version]}, "versions": {name: [number]}} to
the file the plan's "output" names (MLflow prints its own lines on standard output).

Each version's files are laid out as MLflow lays out a model directory (the model file
where its flavor keeps it, and an MLmodel file written by mlflow.models.Model), logged
as the artifacts of a run with the run's metrics and params, and registered from the
run's artifact URI.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.models import Model
from mlflow.pyfunc import add_to_model


def model_directory(root: Path, version: dict) -> Path:
    """A model directory as mlflow.onnx / mlflow.pytorch save_model write it."""
    root.mkdir(parents=True)
    model = Model()
    flavor, file = version["flavor"], version.get("file")
    if flavor == "onnx":
        shutil.copy(file, root / "model.onnx")
        for beside in version.get("beside", []):  # its tensors' files, if saved apart
            shutil.copy(beside, root / Path(beside).name)
        model.add_flavor(
            "onnx",
            onnx_version="1.17.0",
            data="model.onnx",
            providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
            code=None,
        )
        add_to_model(model, loader_module="mlflow.onnx", data="model.onnx")
    elif flavor == "pytorch":
        data = root / "data"
        data.mkdir()
        if file.endswith(".pt2"):  # serialization_format="pt2": torch.export.save
            shutil.copy(file, data / "model.pt2")
        else:  # serialization_format="pickle": torch.save with its pickle module named
            shutil.copy(file, data / "model.pth")
            (data / "pickle_module_info.txt").write_text("mlflow.pytorch.pickle_module")
        model.add_flavor("pytorch", model_data="data", pytorch_version="2.13.0", code=None)
        add_to_model(
            model,
            loader_module="mlflow.pytorch",
            data="data",
            pickle_module_name="mlflow.pytorch.pickle_module",
        )
    elif flavor == "escaping":  # an onnx flavor whose model file lies outside the model
        model.add_flavor("onnx", onnx_version="1.17.0", data="../../../../../etc/passwd")
    else:  # a flavor of no framework the hub reads: a custom pyfunc model
        (root / "python_model.pkl").write_bytes(b"not read")
        add_to_model(model, loader_module="mlflow.pyfunc.model", python_model="python_model.pkl")
    model.save(str(root / "MLmodel"))
    return root


def main() -> None:
    plan = json.load(sys.stdin)
    mlflow.set_tracking_uri(plan["tracking_uri"])
    mlflow.set_experiment(plan["experiment"])
    client = MlflowClient()
    workdir = Path(plan["workdir"])
    runs: dict[str, list[str]] = {}
    numbers: dict[str, list[str]] = {}
    for registered in plan["models"]:
        name = registered["name"]
        client.create_registered_model(
            name, tags=registered.get("tags") or None, description=registered.get("description")
        )
        runs[name], numbers[name] = [], []
        for index, version in enumerate(registered["versions"]):
            with mlflow.start_run() as run:
                mlflow.log_metrics(version.get("metrics", {}))
                mlflow.log_params(version.get("params", {}))
                directory = model_directory(workdir / f"{name}-{index}", version)
                mlflow.log_artifacts(str(directory), artifact_path="model")
            created = client.create_model_version(
                name,
                source=f"{run.info.artifact_uri}/model",
                run_id=run.info.run_id,
                tags=version.get("tags") or None,
                description=version.get("description"),
            )
            runs[name].append(run.info.run_id)
            numbers[name].append(created.version)
        for alias, index in registered.get("aliases", {}).items():
            client.set_registered_model_alias(name, alias, numbers[name][index])
    Path(plan["output"]).write_text(json.dumps({"runs": runs, "versions": numbers}))


if __name__ == "__main__":
    main()
