"""Python client for a ModelCI Hub: ``ModelHub`` (sync) and ``AsyncModelHub``.

Methods mirror the seed's ModelService (``register_model``, ``get_models``,
``get_by_id``, ``update_model``, the profiling-result calls, ``delete_model``) plus jobs.
They return the hub's own pydantic models and raise the hub's typed errors
(``modelci.schema.errors``: ``NotFound``, ``Conflict``, …) by ``extensions.code``.

The operation documents are written by hand, next to the methods that use them, and a
test validates every one against the live schema, which gives the guarantee generated
code would (no drift from ``schema.graphql``) without a code generator in the build.
Uploads and downloads stream in chunks and report progress through a callback.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import IO, Any, BinaryIO

import httpx

from modelci.schema.domain import (
    FINISHED_JOB_STATUSES,
    DynamicProfileResult,
    MLModel,
    ProfilingJob,
    StaticProfileResult,
)
from modelci.schema.errors import ERRORS_BY_CODE, INTERNAL_SERVER_ERROR, HubError

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
CHUNK_SIZE = 1024 * 1024
PAGE_SIZE = 100


class InternalServerError(HubError):
    code = INTERNAL_SERVER_ERROR


MODEL_FIELDS = """
id architecture framework engine version dataset task creator modelStatus parentModelId
createTime updateTime
metric { name value }
inputs { name shape dtype format }
outputs { name shape dtype format }
weight { filename size sha256 contentType format }
conversion { sourceEngine batchSizes maxAbsDiff maxRelDiff tolerance }
profileResult {
  staticResult { parameters flops memory mread mwrite mrw macs uncountedOperators method }
  dynamicResults {
    ip deviceId deviceName batch createTime
    memory { totalMemory memoryUsage utilization }
    latency {
      initializationLatency { avg p50 p95 p99 }
      preprocessLatency { avg p50 p95 p99 }
      inferenceLatency { avg p50 p95 p99 }
      postprocessLatency { avg p50 p95 p99 }
    }
    throughput {
      batchFormationThroughput preprocessThroughput inferenceThroughput postprocessThroughput
    }
    measurement {
      runtime intraOpThreads samples windows stable iqrOverMedian percentileMethod
    }
  }
}
"""

JOB_FIELDS = """
id modelId kind status batchSizes devices targets profileVariants progress error worker
attempts maxAttempts leaseExpiresAt createTime startTime endTime updateTime
log { time message }
"""

OPERATIONS = {
    "register": """
mutation Register($input: ModelInput!, $weight: Upload!, $convert: Boolean!, $profile: Boolean!) {
  registerModel(input: $input, weight: $weight, convert: $convert, profile: $profile) {
    %s
  }
}"""
    % MODEL_FIELDS,
    "get": "query Get($id: ID!) { model(id: $id) { %s } }" % MODEL_FIELDS,
    "list": """
query List($architecture: String, $task: Task, $framework: Framework, $engine: Engine,
           $version: Int, $dataset: String, $status: ModelStatus, $first: Int!, $after: String) {
  models(architecture: $architecture, task: $task, framework: $framework, engine: $engine,
         version: $version, dataset: $dataset, status: $status, first: $first, after: $after) {
    nodes { %s }
    pageInfo { hasNextPage endCursor }
  }
}"""
    % MODEL_FIELDS,
    "update": """
mutation Update($id: ID!, $input: ModelUpdateInput!, $weight: Upload) {
  updateModel(id: $id, input: $input, weight: $weight) { %s }
}"""
    % MODEL_FIELDS,
    "delete": """
mutation Delete($id: ID!, $cascade: Boolean!) {
  deleteModel(id: $id, cascade: $cascade) { %s }
}"""
    % MODEL_FIELDS,
    "static": """
mutation Static($id: ID!, $result: StaticProfileResultInput!) {
  registerStaticProfilingResult(modelId: $id, result: $result) { %s }
}"""
    % MODEL_FIELDS,
    "add_dynamic": """
mutation AddDynamic($id: ID!, $result: DynamicProfileResultInput!) {
  registerDynamicProfilingResult(modelId: $id, result: $result) { %s }
}"""
    % MODEL_FIELDS,
    "update_dynamic": """
mutation UpdateDynamic($id: ID!, $result: DynamicProfileResultInput!, $force: Boolean!) {
  updateDynamicProfilingResult(modelId: $id, result: $result, forceInsert: $force) { %s }
}"""
    % MODEL_FIELDS,
    "delete_dynamic": """
mutation DeleteDynamic($id: ID!, $ip: String!, $deviceId: String!, $batch: Int) {
  deleteDynamicProfilingResult(modelId: $id, ip: $ip, deviceId: $deviceId, batch: $batch) {
    %s
  }
}"""
    % MODEL_FIELDS,
    "profile": """
mutation Profile($id: ID!, $batchSizes: [Int!], $devices: [String!]) {
  profileModel(modelId: $id, batchSizes: $batchSizes, devices: $devices) { %s }
}"""
    % JOB_FIELDS,
    "convert": """
mutation Convert($id: ID!, $targets: [Engine!], $profile: Boolean!) {
  convertModel(modelId: $id, targets: $targets, profile: $profile) { %s }
}"""
    % JOB_FIELDS,
    "job": "query Job($id: ID!) { profilingJob(id: $id) { %s } }" % JOB_FIELDS,
    "jobs": """
query Jobs($modelId: ID, $status: JobStatus, $first: Int!, $after: String) {
  profilingJobs(modelId: $modelId, status: $status, first: $first, after: $after) {
    nodes { %s }
    pageInfo { hasNextPage endCursor }
  }
}"""
    % JOB_FIELDS,
    "cancel": "mutation Cancel($id: ID!) { cancelProfilingJob(id: $id) { %s } }" % JOB_FIELDS,
}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def keys_to(convert: Callable[[str], str], value: Any) -> Any:
    if isinstance(value, dict):
        return {convert(key): keys_to(convert, item) for key, item in value.items()}
    if isinstance(value, list):
        return [keys_to(convert, item) for item in value]
    return value


def as_input(value: Any) -> Any:
    """Pydantic models, enums or snake_case dicts as GraphQL input values (camelCase)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True, exclude={"create_time"})
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {camel(key): as_input(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_input(item) for item in value]
    return value


def model_input(fields: dict[str, Any]) -> dict[str, Any]:
    return {camel(key): as_input(value) for key, value in fields.items() if value is not None}


def raise_for(body: dict[str, Any], status: int) -> None:
    errors = body.get("errors") or []
    if not errors:
        if status >= 400:
            raise InternalServerError(f"HTTP {status}")
        return
    error = errors[0]
    extensions = dict(error.get("extensions") or {})
    code = extensions.pop("code", INTERNAL_SERVER_ERROR)
    raise ERRORS_BY_CODE.get(code, InternalServerError)(error.get("message", code), **extensions)


class CountingReader:
    """A file object that reports how much of it has been read."""

    def __init__(self, file: BinaryIO, total: int, progress: Progress | None) -> None:
        self.file, self.total, self.progress, self.done = file, total, progress, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.file.read(size)
        self.done += len(chunk)
        if self.progress is not None:
            self.progress(self.done, self.total)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK_SIZE):
            yield chunk


@contextmanager
def opened_weight(
    weight: str | Path | bytes, progress: Progress | None
) -> Iterator[tuple[str, Any]]:
    """(file name, a counting reader) for a path or bytes."""
    if isinstance(weight, bytes):
        yield "weight", CountingReader(io.BytesIO(weight), len(weight), progress)
        return
    path = Path(weight)
    with path.open("rb") as file:
        yield path.name, CountingReader(file, path.stat().st_size, progress)


def multipart(
    query: str, variables: dict[str, Any], filename: str, reader: IO[bytes]
) -> dict[str, Any]:
    operations = json.dumps({"query": query, "variables": {**variables, "weight": None}})
    return {
        "data": {"operations": operations, "map": json.dumps({"0": ["variables.weight"]})},
        "files": {"0": (filename, reader, "application/octet-stream")},
        "headers": {"apollo-require-preflight": "true"},
    }


class JobFollower:
    """What following a job means, for the sync and async clients alike: report each
    change, stop when the job has ended, give up after ``timeout_s``."""

    def __init__(
        self,
        job_id: str,
        on_update: Callable[[ProfilingJob], None] | None,
        timeout_s: float | None,
    ) -> None:
        self.job_id, self.on_update = job_id, on_update
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.last_update: Any = None
        self.job: ProfilingJob

    def ended(self, job: ProfilingJob) -> bool:
        self.job = job
        if job.update_time != self.last_update:
            self.last_update = job.update_time
            if self.on_update is not None:
                self.on_update(job)
        if job.status in FINISHED_JOB_STATUSES:
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError(f"job {self.job_id} still {job.status.value}")
        return False


class ModelHub:
    """A hub at ``url``; ``token`` for servers with auth on."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ModelHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return str(self.http.base_url)

    def execute(self, document: str, **variables: Any) -> Any:
        """Run a GraphQL document; the value of its (single) root field."""
        response = self.http.post("/graphql", json={"query": document, "variables": variables})
        return self.data(response)

    def call(self, operation: str, **variables: Any) -> Any:
        return self.execute(OPERATIONS[operation], **variables)

    def upload(
        self,
        document: str,
        weight: str | Path | bytes,
        progress: Progress | None = None,
        **variables: Any,
    ) -> Any:
        """Run a document whose ``$weight`` is the file, sent as a streamed multipart upload."""
        with opened_weight(weight, progress) as (filename, reader):
            response = self.http.post(
                "/graphql", **multipart(document, variables, filename, reader)
            )
        return self.data(response)

    @staticmethod
    def data(response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            raise InternalServerError(
                f"HTTP {response.status_code}: {response.text[:200]}"
            ) from None
        raise_for(body, response.status_code)
        (value,) = body["data"].values()
        return value

    # The seed's model service

    def register_model(
        self,
        weight: str | Path | bytes,
        *,
        convert: bool = True,
        profile: bool = False,
        progress: Progress | None = None,
        **fields: Any,
    ) -> MLModel:
        """Register a model; ``fields`` as ModelInput (architecture, framework, engine, …)."""
        registered = self.upload(
            OPERATIONS["register"],
            weight,
            progress,
            input=model_input(fields),
            convert=convert,
            profile=profile,
        )
        return MLModel.model_validate(keys_to(snake, registered))

    def get_by_id(self, model_id: str) -> MLModel:
        return MLModel.model_validate(keys_to(snake, self.call("get", id=model_id)))

    def get_models(self, limit: int | None = None, **filters: Any) -> list[MLModel]:
        """Models matching every filter (architecture, task, …), newest first."""
        found: list[MLModel] = []
        after = None
        while limit is None or len(found) < limit:
            page = self.call("list", first=PAGE_SIZE, after=after, **as_input(filters))
            found += [MLModel.model_validate(keys_to(snake, node)) for node in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        return found[:limit] if limit is not None else found

    def update_model(
        self,
        model_id: str,
        weight: str | Path | bytes | None = None,
        progress: Progress | None = None,
        **changes: Any,
    ) -> MLModel:
        variables = {"id": model_id, "input": model_input(changes)}
        if weight is None:
            return MLModel.model_validate(keys_to(snake, self.call("update", **variables)))
        updated = self.upload(OPERATIONS["update"], weight, progress, **variables)
        return MLModel.model_validate(keys_to(snake, updated))

    def delete_model(self, model_id: str, cascade: bool = False) -> MLModel:
        deleted = self.call("delete", id=model_id, cascade=cascade)
        return MLModel.model_validate(keys_to(snake, deleted))

    def register_static_profiling_result(
        self, model_id: str, result: StaticProfileResult
    ) -> MLModel:
        changed = self.call("static", id=model_id, result=as_input(result))
        return MLModel.model_validate(keys_to(snake, changed))

    def register_dynamic_profiling_result(
        self, model_id: str, result: DynamicProfileResult
    ) -> MLModel:
        changed = self.call("add_dynamic", id=model_id, result=as_input(result))
        return MLModel.model_validate(keys_to(snake, changed))

    def update_dynamic_profiling_result(
        self, model_id: str, result: DynamicProfileResult, force_insert: bool = False
    ) -> MLModel:
        changed = self.call(
            "update_dynamic", id=model_id, result=as_input(result), force=force_insert
        )
        return MLModel.model_validate(keys_to(snake, changed))

    def delete_dynamic_profiling_result(
        self, model_id: str, ip: str, device_id: str, batch: int | None = None
    ) -> MLModel:
        changed = self.call("delete_dynamic", id=model_id, ip=ip, deviceId=device_id, batch=batch)
        return MLModel.model_validate(keys_to(snake, changed))

    def download_weight(
        self, model_id: str, target: str | Path, progress: Progress | None = None
    ) -> Path:
        """Stream the weight into ``target`` (a file, or a folder to put it in)."""
        path = Path(target)
        with self.http.stream("GET", f"/models/{model_id}/weight") as response:
            if response.status_code != 200:
                response.read()
                raise_for(response.json(), response.status_code)
            if path.is_dir():
                disposition = response.headers.get("content-disposition", "")
                path = path / (disposition.rpartition("''")[2] or model_id)
            total = int(response.headers.get("content-length", 0))
            done = 0
            with path.open("wb") as file:
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    file.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        return path

    # Jobs

    def profile_model(
        self, model_id: str, batch_sizes: list[int] | None = None, devices: list[str] | None = None
    ) -> ProfilingJob:
        job = self.call("profile", id=model_id, batchSizes=batch_sizes, devices=devices)
        return ProfilingJob.model_validate(keys_to(snake, job))

    def convert_model(
        self, model_id: str, targets: list[str] | None = None, profile: bool = False
    ) -> ProfilingJob:
        job = self.call("convert", id=model_id, targets=targets, profile=profile)
        return ProfilingJob.model_validate(keys_to(snake, job))

    def get_job(self, job_id: str) -> ProfilingJob:
        return ProfilingJob.model_validate(keys_to(snake, self.call("job", id=job_id)))

    def get_jobs(
        self, model_id: str | None = None, status: str | None = None
    ) -> list[ProfilingJob]:
        page = self.call("jobs", modelId=model_id, status=status, first=PAGE_SIZE, after=None)
        return [ProfilingJob.model_validate(keys_to(snake, node)) for node in page["nodes"]]

    def cancel_job(self, job_id: str) -> ProfilingJob:
        return ProfilingJob.model_validate(keys_to(snake, self.call("cancel", id=job_id)))

    def wait_for_job(
        self,
        job_id: str,
        on_update: Callable[[ProfilingJob], None] | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> ProfilingJob:
        """Follow a job until it ends, calling ``on_update`` whenever it changed."""
        follower = JobFollower(job_id, on_update, timeout_s)
        while not follower.ended(self.get_job(job_id)):
            time.sleep(poll_s)
        return follower.job


class AsyncModelHub:
    """The same client for asyncio code: ModelHub's methods, awaited.

    Each call runs the synchronous client in a worker thread, so uploads and downloads
    stream just the same and the event loop never blocks.
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0) -> None:
        self.hub = ModelHub(url, token, timeout)

    async def __aenter__(self) -> AsyncModelHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.hub.close)

    async def execute(self, document: str, **variables: Any) -> Any:
        return await asyncio.to_thread(self.hub.execute, document, **variables)

    async def register_model(
        self,
        weight: str | Path | bytes,
        *,
        convert: bool = True,
        profile: bool = False,
        progress: Progress | None = None,
        **fields: Any,
    ) -> MLModel:
        return await asyncio.to_thread(
            self.hub.register_model,
            weight,
            convert=convert,
            profile=profile,
            progress=progress,
            **fields,
        )

    async def get_by_id(self, model_id: str) -> MLModel:
        return await asyncio.to_thread(self.hub.get_by_id, model_id)

    async def get_models(self, limit: int | None = None, **filters: Any) -> list[MLModel]:
        return await asyncio.to_thread(self.hub.get_models, limit, **filters)

    async def update_model(
        self,
        model_id: str,
        weight: str | Path | bytes | None = None,
        progress: Progress | None = None,
        **changes: Any,
    ) -> MLModel:
        return await asyncio.to_thread(self.hub.update_model, model_id, weight, progress, **changes)

    async def delete_model(self, model_id: str, cascade: bool = False) -> MLModel:
        return await asyncio.to_thread(self.hub.delete_model, model_id, cascade)

    async def register_static_profiling_result(
        self, model_id: str, result: StaticProfileResult
    ) -> MLModel:
        return await asyncio.to_thread(self.hub.register_static_profiling_result, model_id, result)

    async def register_dynamic_profiling_result(
        self, model_id: str, result: DynamicProfileResult
    ) -> MLModel:
        return await asyncio.to_thread(self.hub.register_dynamic_profiling_result, model_id, result)

    async def update_dynamic_profiling_result(
        self, model_id: str, result: DynamicProfileResult, force_insert: bool = False
    ) -> MLModel:
        return await asyncio.to_thread(
            self.hub.update_dynamic_profiling_result, model_id, result, force_insert
        )

    async def delete_dynamic_profiling_result(
        self, model_id: str, ip: str, device_id: str, batch: int | None = None
    ) -> MLModel:
        return await asyncio.to_thread(
            self.hub.delete_dynamic_profiling_result, model_id, ip, device_id, batch
        )

    async def download_weight(
        self, model_id: str, target: str | Path, progress: Progress | None = None
    ) -> Path:
        return await asyncio.to_thread(self.hub.download_weight, model_id, target, progress)

    async def profile_model(
        self, model_id: str, batch_sizes: list[int] | None = None, devices: list[str] | None = None
    ) -> ProfilingJob:
        return await asyncio.to_thread(self.hub.profile_model, model_id, batch_sizes, devices)

    async def convert_model(
        self, model_id: str, targets: list[str] | None = None, profile: bool = False
    ) -> ProfilingJob:
        return await asyncio.to_thread(self.hub.convert_model, model_id, targets, profile)

    async def get_job(self, job_id: str) -> ProfilingJob:
        return await asyncio.to_thread(self.hub.get_job, job_id)

    async def get_jobs(
        self, model_id: str | None = None, status: str | None = None
    ) -> list[ProfilingJob]:
        return await asyncio.to_thread(self.hub.get_jobs, model_id, status)

    async def cancel_job(self, job_id: str) -> ProfilingJob:
        return await asyncio.to_thread(self.hub.cancel_job, job_id)

    async def wait_for_job(
        self,
        job_id: str,
        on_update: Callable[[ProfilingJob], None] | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> ProfilingJob:
        """Follow a job until it ends, without blocking the event loop between polls."""
        follower = JobFollower(job_id, on_update, timeout_s)
        # Polling a remote state: there is no local event to wait on.
        while not follower.ended(await self.get_job(job_id)):  # noqa: ASYNC110
            await asyncio.sleep(poll_s)
        return follower.job
