"""`modelci import --from-mlflow URL`: an MLflow model registry's registered models and
their versions copied into a hub, through MLflow's REST API and the hub's Python client.

MLflow's concepts become the hub's: a registered model is an architecture, each of its
versions a model of that architecture with the same version number where the hub has it
free (the next free one otherwise), the registered model's and the version's tags the
model's tags, their descriptions its description, the source run's metrics and params
its metrics and params, and the run's page in MLflow its source (with the run id). An
alias ``champion`` of the registered model ``fraud`` becomes the hub's alias
``fraud.champion`` (a hub's aliases name models of every architecture); a legacy stage
(Staging, Production) becomes ``fraud.staging`` / ``fraud.production``.

Weights: the ``onnx`` flavor's model file, and the ``pytorch`` flavor's program when it
was saved with ``torch.export`` (``serialization_format="pt2"``) or as TorchScript. A
pickled PyTorch model is left out unless ``--allow-pickle`` (and the hub takes it only
when it was started with ``--allow-pickle`` too); other flavors are left out, each with
its reason.

Each copied model carries the tag ``mlflow.model_version``: the address of the version
it came from. A second import finds it and copies nothing again.

Everything the MLflow server sends is read as untrusted: JSON answers and files are read
to a size cap while they stream, artifact paths must be plain relative paths, counts are
bounded, and the hub inspects every weight as it inspects any upload.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from modelci.client import ModelHub
from modelci.core.domain import (
    CONTROL_CHARACTERS,
    CONTROL_CHARACTERS_BUT_LINES,
    MAX_DESCRIPTION,
    MAX_METADATA_VALUE,
    MAX_METRICS,
    MAX_PARAMS,
    MAX_RUN_ID,
    MAX_SOURCE_URI,
    MAX_TAGS,
    METADATA_NAME,
    Framework,
    Task,
    WeightFormat,
)
from modelci.core.errors import BadUserInput, Conflict, HubError
from modelci.core.usecases import checked_alias
from modelci.core.weight_formats import WEIGHT_FORMATS

# The tag that says which MLflow model version a hub model was copied from.
ORIGIN_TAG = "mlflow.model_version"
# A weight is refused past the hub's default upload limit (MODELCI_MAX_UPLOAD_BYTES).
MAX_WEIGHT_BYTES = 4 * 1024**3
MAX_JSON_BYTES = 64 * 1024**2  # one REST answer (a page of 1,000 versions with tags)
MAX_MLMODEL_BYTES = 1024**2
MAX_EXTERNAL_FILES = 1000  # files an ONNX model's tensors may lie in
ONNX_FILE_LIMIT = 2 * 1024**3  # protobuf's: a larger ONNX model cannot be one file
PAGE_SIZE = 1000
MAX_PAGES = 1000  # of one listing: a server that hands out page tokens for ever stops here
MAX_ARCHITECTURE = 256
ARTIFACT_PATH = re.compile(r"[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*")
# Where mlflow.pytorch keeps its model under the flavor's model_data folder.
EXPORTED_PROGRAM, PICKLED_MODEL = "model.pt2", "model.pth"
ACCEPTED_FORMATS = (WeightFormat.ONNX, WeightFormat.TORCH_EXPORT, WeightFormat.TORCHSCRIPT)
PICKLE_REASON = (
    "a pickled PyTorch model: unpickling runs arbitrary code (--allow-pickle copies it, to a "
    "hub started with --allow-pickle; or log it with serialization_format='pt2')"
)


class MlflowError(Exception):
    """The MLflow server could not be read, or answered something no MLflow server sends
    (``status``: its HTTP status, where it answered)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Skipped(Exception):
    """A model version that is not copied, and why."""


def safe_yaml(text: str) -> Any:
    """An MLmodel file's YAML, read as data only (no tags that build objects)."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with uvicorn[standard]
        raise MlflowError(
            "reading MLflow's MLmodel files needs PyYAML: pip install 'modelci[mlflow]'"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise Skipped(f"its MLmodel file is no YAML ({str(error)[:200]})") from None


def artifact_path(value: Any, what: str) -> str:
    """A path inside a model's artifacts as MLmodel names it: plain relative parts only."""
    if (
        not isinstance(value, str)
        or len(value) > 1024
        or not ARTIFACT_PATH.fullmatch(value)
        or any(part in (".", "..") for part in value.split("/"))
    ):
        # reprlib: a YAML alias bomb's str() would expand it whole before any cut.
        named = value[:100] if isinstance(value, str) else reprlib.repr(value)
        raise Skipped(f"its MLmodel file names {what} {named!r}, no plain relative path")
    return str(PurePosixPath(value))


def printable_or_none(text: Any, limit: int, *, lines: bool = False) -> str | None:
    if not isinstance(text, str) or len(text) > limit:
        return None
    pattern = CONTROL_CHARACTERS_BUT_LINES if lines else CONTROL_CHARACTERS
    return None if pattern.search(text) else text


class MlflowRegistry:
    """An MLflow tracking server's model registry and runs, read over its REST API
    (credentials as MLflow's own client takes them: MLFLOW_TRACKING_TOKEN, or
    MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MlflowError(f"{url!r} is no MLflow server's URL: give http(s)://HOST:PORT")
        self.url = url.rstrip("/")
        headers, auth = {}, None
        if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
            headers["Authorization"] = f"Bearer {token}"
        elif user := os.environ.get("MLFLOW_TRACKING_USERNAME"):
            auth = httpx.BasicAuth(user, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
        self.http = httpx.Client(
            base_url=self.url, headers=headers, auth=auth, timeout=timeout, follow_redirects=False
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> MlflowRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """A REST answer as a JSON object, read to MAX_JSON_BYTES."""
        body = bytearray()
        try:
            with self.http.stream("GET", path, params=params) as response:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_JSON_BYTES:
                        raise MlflowError(f"{path}: an answer over {MAX_JSON_BYTES} bytes")
        except httpx.HTTPError as error:
            raise MlflowError(f"cannot reach the MLflow server at {self.url} ({error})") from None
        try:
            document = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            document = None
        if response.status_code != 200:
            message = document.get("message") if isinstance(document, dict) else None
            raise MlflowError(
                f"{path}: HTTP {response.status_code}"
                + (f": {str(message)[:300]}" if message else "")
                + (
                    " (set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and _PASSWORD)"
                    if response.status_code in (401, 403)
                    else ""
                ),
                response.status_code,
            )
        if not isinstance(document, dict):
            raise MlflowError(f"{path}: the answer is no JSON object")
        return document

    def pages(self, path: str, key: str) -> Iterator[dict[str, Any]]:
        """Every item of a paginated search."""
        token: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"max_results": PAGE_SIZE}
            if token:
                params["page_token"] = token
            page = self.get(path, params)
            items = page.get(key, [])
            if not isinstance(items, list):
                raise MlflowError(f"{path}: {key} is no list")
            for item in items:
                if isinstance(item, dict):
                    yield item
            token = page.get("next_page_token")
            if not token or not isinstance(token, str):
                return
        raise MlflowError(f"{path}: more than {MAX_PAGES} pages of {PAGE_SIZE}")

    def registered_models(self) -> list[dict[str, Any]]:
        return list(self.pages("/api/2.0/mlflow/registered-models/search", "registered_models"))

    def model_versions(self) -> list[dict[str, Any]]:
        return list(self.pages("/api/2.0/mlflow/model-versions/search", "model_versions"))

    def run(self, run_id: str) -> dict[str, Any]:
        run = self.get("/api/2.0/mlflow/runs/get", {"run_id": run_id}).get("run")
        return run if isinstance(run, dict) else {}

    def artifact(self, name: str, version: str, path: str, target: Path, limit: int) -> bool:
        """A model version's artifact ``path`` streamed into ``target``, refused past
        ``limit`` bytes; False where the version has no such file."""
        params = {"name": name, "version": version, "path": path}
        size = 0
        try:
            with self.http.stream("GET", "/model-versions/get-artifact", params=params) as answer:
                if answer.status_code == 404:
                    return False
                if answer.status_code != 200:
                    answer.read()
                    raise Skipped(f"MLflow answered HTTP {answer.status_code} for {path}")
                with target.open("wb") as file:
                    for chunk in answer.iter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise Skipped(f"{path} is over {limit} bytes")
                        file.write(chunk)
        except httpx.HTTPError as error:
            raise Skipped(f"{path} could not be downloaded ({error})") from None
        return True


@dataclass
class Weight:
    path: Path
    weight_format: WeightFormat


@dataclass
class Outcome:
    """What became of one model version."""

    name: str
    version: str
    action: str  # copied, present (copied before), skipped, failed
    detail: str = ""
    model_id: str | None = None
    left_out: list[str] = field(default_factory=list)


@dataclass
class ImportSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)  # set (or that would be)
    aliases_present: int = 0
    aliases_skipped: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(outcome.action == action for outcome in self.outcomes)


class MlflowImport:
    """Copies what ``registry`` holds into ``hub`` (or, with ``dry_run``, reads all of it
    and says what it would copy); ``report`` hears of each version as it is done."""

    def __init__(
        self,
        registry: MlflowRegistry,
        hub: ModelHub,
        *,
        allow_pickle: bool = False,
        dry_run: bool = False,
        report: Callable[[Outcome], None] = lambda outcome: None,
        max_weight_bytes: int = MAX_WEIGHT_BYTES,
    ) -> None:
        self.registry, self.hub = registry, hub
        self.allow_pickle, self.dry_run, self.report = allow_pickle, dry_run, report
        self.max_weight_bytes = max_weight_bytes
        self.summary = ImportSummary()

    def origin(self, name: str, version: str) -> str:
        """The MLflow UI's page of a model version: what a copy is recognised by."""
        return f"{self.registry.url}/#/models/{quote(name, safe='')}/versions/{version}"

    def run(self) -> ImportSummary:
        versions_of: dict[str, list[dict[str, Any]]] = {}
        for version in self.registry.model_versions():
            if isinstance(version.get("name"), str):
                versions_of.setdefault(version["name"], []).append(version)
        aliases = {alias.alias: alias.model_id for alias in self.hub.aliases()}
        for registered in self.registry.registered_models():
            name = registered.get("name")
            if not isinstance(name, str):
                continue
            versions = sorted(versions_of.get(name, []), key=lambda v: number(v) or 0)
            copies = self.copy_registered_model(registered, versions)
            self.copy_aliases(name, registered, versions, copies, aliases)
        return self.summary

    def copy_registered_model(
        self, registered: dict[str, Any], versions: list[dict[str, Any]]
    ) -> dict[str, str]:
        """Each version copied (or found copied before); the hub model ids by version."""
        name = registered["name"]
        copies: dict[str, str] = {}
        architecture = printable_or_none(name, MAX_ARCHITECTURE)
        here = {} if architecture is None else self.copies_in_hub(architecture)
        for version in versions:
            number_text = str(version.get("version"))
            outcome = Outcome(name, number_text, "skipped")
            try:
                if architecture is None:
                    raise Skipped(
                        f"its name is no architecture name for the hub (1 to {MAX_ARCHITECTURE} "
                        "characters, no control characters)"
                    )
                if number(version) is None:
                    raise Skipped("its version is no number")
                origin = self.origin(name, number_text)
                if len(origin) > MAX_METADATA_VALUE:
                    raise Skipped(
                        f"its address in MLflow is over {MAX_METADATA_VALUE} characters, the "
                        f"most a tag ({ORIGIN_TAG}) holds to recognise it by"
                    )
                if origin in here:
                    outcome.action, outcome.model_id = "present", here[origin]
                    outcome.detail = f"copied before, as model {here[origin]}"
                else:
                    self.copy_version(registered, version, origin, outcome)
            except Skipped as reason:
                outcome.action, outcome.detail = "skipped", str(reason)
            except (HubError, MlflowError) as error:
                outcome.action = "failed"
                outcome.detail = (
                    f"the hub refused it: {error.message}"
                    if isinstance(error, HubError)
                    else str(error)
                )
            if outcome.model_id is not None:
                copies[number_text] = outcome.model_id
            elif outcome.action == "copied":  # a dry run's: no model yet
                copies[number_text] = ""
            self.summary.outcomes.append(outcome)
            self.report(outcome)
        return copies

    def copies_in_hub(self, architecture: str) -> dict[str, str]:
        """The hub's models of ``architecture`` copied from MLflow, by origin: registered
        ones, not their converted variants (which copy their source's tags)."""
        found: dict[str, str] = {}
        for model in self.hub.get_models(architecture=architecture):
            if model.parent_model_id:
                continue
            for tag in model.tags:
                if tag.name == ORIGIN_TAG:
                    found.setdefault(tag.value, model.id)
        return found

    def copy_version(
        self, registered: dict[str, Any], version: dict[str, Any], origin: str, outcome: Outcome
    ) -> None:
        name, number_text = registered["name"], str(version["version"])
        if version.get("status", "READY") != "READY":
            raise Skipped(f"its status is {str(version.get('status'))[:40]}, not READY")
        with tempfile.TemporaryDirectory(prefix="modelci-mlflow-") as folder:
            weight = self.weight(name, number_text, Path(folder))
            fields = self.metadata(registered, version, origin, outcome.left_out)
            rule = WEIGHT_FORMATS[weight.weight_format]
            fields["framework"] = (rule.framework or Framework.ONNX).value
            fields["engine"] = rule.engine.value
            if self.dry_run:
                outcome.action = "copied"
                outcome.detail = f"{rule.name}, would be version {number_text} (or the next free)"
                return
            try:
                model = self.hub.register_model(
                    weight.path, version=int(number_text), convert=False, **fields
                )
            except Conflict:  # the version number is taken here: the next free one
                model = self.hub.register_model(weight.path, convert=False, **fields)
        outcome.action, outcome.model_id = "copied", model.id
        outcome.detail = f"{rule.name}, as model {model.id} version {model.version}"

    def weight(self, name: str, version: str, folder: Path) -> Weight:
        """The version's weight file, downloaded and told apart by its content."""
        mlmodel = folder / "MLmodel"
        if not self.registry.artifact(name, version, "MLmodel", mlmodel, MAX_MLMODEL_BYTES):
            raise Skipped("no MLmodel file among its artifacts: no MLflow model")
        document = safe_yaml(mlmodel.read_text(errors="replace"))
        flavors = document.get("flavors") if isinstance(document, dict) else None
        if not isinstance(flavors, dict):
            raise Skipped("its MLmodel file lists no flavors")
        candidates: list[str]
        onnx, pytorch = flavors.get("onnx"), flavors.get("pytorch")
        if isinstance(onnx, dict):
            candidates = [artifact_path(onnx.get("data"), "the ONNX model")]
        elif isinstance(pytorch, dict):
            data = artifact_path(pytorch.get("model_data", "data"), "the PyTorch model data")
            candidates = [f"{data}/{EXPORTED_PROGRAM}", f"{data}/{PICKLED_MODEL}"]
        else:
            listed = ", ".join(sorted(str(name)[:40] for name in flavors)[:8])
            raise Skipped(
                f"flavors {listed}: the hub copies the onnx flavor and PyTorch's pytorch flavor"
            )
        for candidate in candidates:
            target = folder / PurePosixPath(candidate).name
            if self.registry.artifact(name, version, candidate, target, self.max_weight_bytes):
                if isinstance(onnx, dict):
                    self.onnx_in_one_file(name, version, candidate, target)
                return Weight(target, self.checked_format(target))
        raise Skipped(f"its artifacts hold no {' or '.join(candidates)}")

    def onnx_in_one_file(self, name: str, version: str, artifact: str, model_path: Path) -> None:
        """An ONNX model whose tensors lie in files beside it (as mlflow.onnx saves them by
        default) made one file, as the hub takes it: each file downloaded (plain relative
        names, to the weight cap in all), read into the model, the model saved over itself."""
        import onnx

        from modelci.cage.formats import tensors

        try:
            model = onnx.load_model(str(model_path), load_external_data=False)
        except Exception:  # protobuf raises several types: the hub's check says what it is
            return
        external = [
            tensor
            for tensor in tensors(model.graph)
            if tensor.data_location == onnx.TensorProto.EXTERNAL
        ]
        if not external:
            return
        locations = set()
        for tensor in external:
            entries = {entry.key: entry.value for entry in tensor.external_data}
            locations.add(artifact_path(entries.get("location"), "a file of its ONNX tensors"))
        if len(locations) > MAX_EXTERNAL_FILES:
            raise Skipped(f"its ONNX tensors lie in over {MAX_EXTERNAL_FILES} files")
        beside = PurePosixPath(artifact).parent
        data = model_path.parent / "external-data"
        budget = self.max_weight_bytes - model_path.stat().st_size
        for location in sorted(locations):
            target = data / location
            target.parent.mkdir(parents=True, exist_ok=True)
            path = str(beside / location)
            if not self.registry.artifact(name, version, path, target, budget):
                raise Skipped(f"its ONNX tensors' file {path} is not among its artifacts")
            budget -= target.stat().st_size
        try:
            onnx.load_external_data_for_model(model, str(data))
        except Exception as error:  # offsets and lengths past the file, and the like
            raise Skipped(f"its ONNX tensors' files cannot be read ({error})") from None
        if model.ByteSize() >= ONNX_FILE_LIMIT:
            raise Skipped("over 2 GiB with its tensors: too large for one ONNX file")
        onnx.save_model(model, str(model_path))

    def checked_format(self, path: Path) -> WeightFormat:
        # Imported here: format sniffing loads onnx.
        from modelci.cage.formats import UnsupportedModel, detect_format

        try:
            found = detect_format(path)
        except UnsupportedModel as error:
            raise Skipped(f"{path.name}: {error}") from None
        if found is WeightFormat.TORCH_PICKLE and not self.allow_pickle:
            raise Skipped(PICKLE_REASON)
        if found not in (*ACCEPTED_FORMATS, WeightFormat.TORCH_PICKLE):
            raise Skipped(
                f"{path.name}: {WEIGHT_FORMATS[found].name}, which the hub takes only "
                "from its own conversions"
            )
        return found

    def metadata(
        self,
        registered: dict[str, Any],
        version: dict[str, Any],
        origin: str,
        left_out: list[str],
    ) -> dict[str, Any]:
        """The register_model keyword arguments MLflow's metadata gives (what the hub's
        limits cannot hold is named in ``left_out``)."""
        tags = key_values(registered.get("tags")) | key_values(version.get("tags"))
        kept_tags = fitting(tags, MAX_TAGS - 1, "tag", left_out, texts=True)
        kept_tags[ORIGIN_TAG] = origin
        descriptions = [
            text
            for text in (registered.get("description"), version.get("description"))
            if isinstance(text, str) and text.strip()
        ]
        description = printable_or_none("\n\n".join(descriptions), MAX_DESCRIPTION, lines=True)
        if description is None:
            left_out.append("the description (over the hub's size, or control characters)")
        fields: dict[str, Any] = {
            "architecture": registered["name"],
            "task": task_of(tags.get("task")),
            "dataset": printable_or_none(tags.get("dataset"), 256) or "unknown",
            "tags": kept_tags,
            "description": description or "",
        }
        run_id = version.get("run_id")
        run: dict[str, Any] | None = None
        if isinstance(run_id, str) and run_id:
            try:
                run = self.registry.run(run_id)
            except MlflowError as error:
                if error.status != 404:
                    raise
                # A run deleted for good: the model is copied without it.
                left_out.append(f"the source run's metrics and params ({error})")
        if run is not None and isinstance(run_id, str):
            data: dict[str, Any] = run["data"] if isinstance(run.get("data"), dict) else {}
            metrics = {
                key: value
                for key, value in key_values(data.get("metrics"), numbers=True).items()
                if isinstance(value, int | float) and math.isfinite(value)
            }
            fields["metrics"] = fitting(metrics, MAX_METRICS, "metric", left_out)
            params = key_values(data.get("params"))
            fields["params"] = fitting(params, MAX_PARAMS, "param", left_out, texts=True)
            info: dict[str, Any] = run["info"] if isinstance(run.get("info"), dict) else {}
            experiment = quote(str(info.get("experiment_id", "0")), safe="")
            source = f"{self.registry.url}/#/experiments/{experiment}/runs/{quote(run_id, safe='')}"
            if len(source) <= MAX_SOURCE_URI and printable_or_none(run_id, MAX_RUN_ID):
                fields["source"], fields["run_id"] = source, run_id
        elif printable_or_none(version.get("source"), MAX_SOURCE_URI):
            fields["source"] = version["source"]
        return fields

    def copy_aliases(
        self,
        name: str,
        registered: dict[str, Any],
        versions: list[dict[str, Any]],
        copies: dict[str, str],
        aliases: dict[str, str],
    ) -> None:
        """The registered model's aliases and stages as the hub's ``NAME.ALIAS``."""
        wanted: dict[str, str] = {}
        for version in versions:  # oldest first: the newest in a stage wins
            stage = version.get("current_stage")
            if isinstance(stage, str) and stage not in ("None", "Archived", ""):
                wanted[stage.lower()] = str(version.get("version"))
        for entry in registered.get("aliases") or []:
            if isinstance(entry, dict) and isinstance(entry.get("alias"), str):
                wanted[entry["alias"]] = str(entry.get("version"))
        for alias, wanted_version in wanted.items():
            hub_alias = f"{name}.{alias}"
            try:
                checked_alias(hub_alias)
            except BadUserInput as refused:
                self.summary.aliases_skipped.append(refused.message)
                continue
            model_id = copies.get(wanted_version)  # "": one a dry run would copy
            if model_id is None:
                self.summary.aliases_skipped.append(
                    f"{hub_alias}: version {wanted_version[:40]} is not copied"
                )
                continue
            if aliases.get(hub_alias) == model_id:
                self.summary.aliases_present += 1
                continue
            if not self.dry_run:
                self.hub.set_alias(hub_alias, model_id)
                aliases[hub_alias] = model_id
            self.summary.aliases.append(f"{hub_alias} → {name} version {wanted_version}")


def number(version: dict[str, Any]) -> int | None:
    text = version.get("version")
    if isinstance(text, int) and text > 0:
        return text
    if isinstance(text, str) and text.isdigit() and len(text) < 10 and int(text) > 0:
        return int(text)
    return None


def key_values(items: Any, numbers: bool = False) -> dict[str, Any]:
    """MLflow's [{key, value}] as a dict (items of other shapes ignored)."""
    found: dict[str, Any] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            value = item.get("value")
            if numbers and isinstance(value, int | float) and not isinstance(value, bool):
                found[item["key"]] = float(value)
            elif not numbers and isinstance(value, str):
                found[item["key"]] = value
    return found


def fitting(
    values: dict[str, Any], limit: int, what: str, left_out: list[str], texts: bool = False
) -> dict[str, Any]:
    """The values whose names and texts the hub takes, up to ``limit``; the others named in
    ``left_out``."""
    kept: dict[str, Any] = {}
    for name, value in values.items():
        if not METADATA_NAME.fullmatch(name):
            left_out.append(f"{what} {name[:80]!r} (a name is 1 to 64 letters, digits, _ . - /)")
        elif texts and printable_or_none(value, MAX_METADATA_VALUE) is None:
            left_out.append(
                f"{what} {name} (its value is over {MAX_METADATA_VALUE} characters "
                "or holds control characters)"
            )
        elif len(kept) >= limit:
            left_out.append(f"{what} {name} (the hub keeps {limit} at most)")
        else:
            kept[name] = value
    return kept


def task_of(value: Any) -> str:
    """The ``task`` tag's value where it names one of the hub's tasks; Other otherwise."""
    known = {task.value.lower(): task.value for task in Task}
    return known.get(str(value).lower(), Task.Other.value) if value else Task.Other.value


VERBS = {"copied": "copied", "present": "already here", "skipped": "skipped", "failed": "FAILED"}


def import_from_mlflow(
    url: str, server: str, token: str | None, *, allow_pickle: bool, dry_run: bool
) -> None:
    """The command: each version's outcome as it is done, then the summary; exit status 1
    when a version could not be copied (the MLflow server or the hub refused it)."""
    import typer

    from .console import EXIT_CODES, EXIT_UNREACHABLE, counted, fail, hub_client, printable

    def report(outcome: Outcome) -> None:
        verb = "would copy" if dry_run and outcome.action == "copied" else VERBS[outcome.action]
        typer.echo(printable(f"{verb} {outcome.name} version {outcome.version}: {outcome.detail}"))
        for left in outcome.left_out:
            typer.echo(printable(f"  left out {left}"))

    try:
        registry = MlflowRegistry(url)
    except MlflowError as error:  # no http(s) URL
        raise fail(
            printable(str(error)),
            "give --from-mlflow http://HOST:PORT",
            EXIT_CODES[BadUserInput.code],
        ) from None
    try:
        with registry, hub_client(server, token) as hub:
            summary = MlflowImport(
                registry, hub, allow_pickle=allow_pickle, dry_run=dry_run, report=report
            ).run()
    except MlflowError as error:
        raise fail(
            printable(str(error)),
            "check the MLflow server's URL (the one its own client's MLFLOW_TRACKING_URI names)",
            EXIT_UNREACHABLE,
        ) from None
    for alias in summary.aliases:
        typer.echo(printable(f"{'would set' if dry_run else 'set'} alias {alias}"))
    for alias in summary.aliases_skipped:
        typer.echo(printable(f"skipped alias {alias}"))
    versions = sum(summary.count(action) for action in VERBS)
    typer.echo(
        printable(
            f"{'dry run, nothing written: ' if dry_run else ''}{counted(versions, 'version')} "
            f"in {registry.url}: {summary.count('copied')} "
            f"{'to copy' if dry_run else 'copied'}, {summary.count('present')} copied before, "
            f"{summary.count('skipped')} skipped, {summary.count('failed')} failed; "
            f"{counted(len(summary.aliases), 'alias', 'aliases')} "
            f"{'to set' if dry_run else 'set'}, {summary.aliases_present} already set, "
            f"{len(summary.aliases_skipped)} skipped"
        )
    )
    if summary.count("failed"):
        raise typer.Exit(1)
