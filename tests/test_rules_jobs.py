"""The rules of jobs, run on the use cases over in-memory fakes of their ports
(``fakes.py``): what may be queued, writes fenced to the worker and token that claimed
the job, variants registered only for a running conversion, retries, hand-backs, fair
turns and cancels. No database, no server, no torch."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from fakes import FakeHub, fake_hub, model_fields
from test_rules_models import (
    INPUTS,
    OWNER,
    TORCHSCRIPT,
    conversion_check,
    onnx,
    plain,
    result,
    torchscript,
)

from modelci.core.domain import (
    Engine,
    JobKind,
    JobStatus,
    MLModel,
    StaticProfileResult,
)
from modelci.core.errors import BadUserInput, Conflict, NotFound

WORKER, TOKEN = "w", "worker-token"


async def convertible(hub: FakeHub, version: int = 1) -> MLModel:
    return await hub.models.register(
        model_fields(**TORCHSCRIPT, inputs=INPUTS, version=version), torchscript(),
        convert=False, profile=False, owner=OWNER,
    )  # fmt: skip


async def claimed(hub: FakeHub, kind: JobKind, worker: str = WORKER, token: str = TOKEN) -> str:
    job = await hub.jobs.claim(worker, [], 60, [kind], token)
    assert job is not None
    return job.id


# Queuing


async def test_bad_profiling_requests_are_refused_naming_the_argument() -> None:
    hub = fake_hub()
    model = await plain(hub)
    for arguments, field in (
        ({"batch_sizes": [0]}, "batchSizes"),
        ({"batch_sizes": [8], "max_batch": 4}, "batchSizes"),
        ({"devices": ["cuda:7"]}, "devices"),
        ({"budget_seconds": 0.5}, "budgetSeconds"),
        ({"max_p99_latency": -1.0}, "maxP99Latency"),
    ):
        arguments = {"batch_sizes": None, "devices": None} | arguments
        with pytest.raises(BadUserInput) as refused:
            await hub.jobs.profile(model.id, owner=OWNER, **arguments)  # type: ignore[arg-type]
        assert refused.value.extensions["field"] == field
    with pytest.raises(NotFound):
        await hub.jobs.profile("f" * 24, None, None, OWNER)
    pytorch = await hub.models.register(
        model_fields(**TORCHSCRIPT, version=2), torchscript(b"no inputs"), convert=False,
        profile=False, owner=OWNER,
    )  # fmt: skip
    with pytest.raises(BadUserInput, match="needs the model's input shapes"):
        await hub.jobs.profile(pytorch.id, None, None, OWNER)
    assert not hub.queue.jobs


async def test_a_job_asks_only_for_devices_a_worker_reported_and_runs_on_one_with_them() -> None:
    hub = fake_hub()
    model = await plain(hub)
    await hub.jobs.claim("gpu-box", [gpu()], 60, None, TOKEN)  # reports cuda:0
    job = await hub.jobs.profile(model.id, [1], ["cuda:0"], OWNER)
    assert await hub.jobs.claim("cpu-box", [], 60, None, TOKEN) is None
    taken = await hub.jobs.claim("gpu-box", [gpu()], 60, None, TOKEN)
    assert taken is not None and taken.id == job.id


def gpu() -> object:
    from modelci.core.domain import Device

    return Device.model_validate(
        {"host": "h", "ip": "10.0.0.2", "device_id": "cuda:0", "name": "NVIDIA T4"}
        | {"kind": "CUDA", "total_memory": 16, "worker": "gpu-box"}
    )


# Conversions, fenced


async def test_a_variant_is_registered_only_for_the_running_conversion_that_asked_for_it() -> None:
    hub = fake_hub()
    source = await convertible(hub)
    await hub.jobs.convert(source.id, [Engine.ONNX], False, OWNER)
    job_id = await claimed(hub, JobKind.CONVERT)

    async def register(engine: Engine = Engine.ONNX, **fence: str | None) -> MLModel:
        given = {"job_id": job_id, "worker": WORKER, "claimant": TOKEN} | fence
        return await hub.models.register_converted(
            source.id, engine, onnx(b"variant"), conversion_check(), profile=False, **given
        )

    with pytest.raises(BadUserInput, match="only for the conversion job"):
        await register(job_id=None)
    with pytest.raises(BadUserInput, match="give the worker"):
        await register(worker=None)
    with pytest.raises(Conflict, match="running under worker w"):
        await register(worker="another")
    with pytest.raises(Conflict, match="refused"):
        await register(claimant="another token")  # a worker's name is no key to its job
    with pytest.raises(BadUserInput, match="converts to ONNX, not TORCHSCRIPT"):
        await register(Engine.TORCHSCRIPT)
    with pytest.raises(BadUserInput, match="the hub can read and inspect"):
        await register(Engine.TRT)
    profile_id = (await hub.jobs.profile(source.id, [1], None, OWNER)).id
    await claimed(hub, JobKind.PROFILE)
    with pytest.raises(BadUserInput, match="variants are registered for a CONVERT job"):
        await register(job_id=profile_id)
    assert len(hub.registry.models) == 1 and not hub.registry.children(source.id)

    variant = await register()
    assert variant.engine is Engine.ONNX and variant.weight.filename == "net.onnx"
    assert variant.inputs == INPUTS and variant.parent_model_id == source.id
    with pytest.raises(Conflict, match="already has its ONNX variant") as again:
        await register()
    assert again.value.extensions["variantId"] == variant.id
    await hub.jobs.cancel(job_id)
    with pytest.raises(Conflict, match="cancelled"):
        await register()
    assert nothing_staged(hub)


def nothing_staged(hub: FakeHub) -> bool:
    return not hub.registry.intake.staged


async def test_a_variants_profiling_is_queued_only_if_the_conversion_asked_and_once() -> None:
    hub = fake_hub()
    source = await convertible(hub)
    await hub.jobs.convert(source.id, [Engine.ONNX], True, OWNER)
    job_id = await claimed(hub, JobKind.CONVERT)
    variant = await hub.models.register_converted(
        source.id, Engine.ONNX, onnx(), conversion_check(), profile=True, job_id=job_id,
        worker=WORKER, claimant=TOKEN,
    )  # fmt: skip
    profiling = [job for job in hub.queue.jobs.values() if job.kind is JobKind.PROFILE]
    assert [(job.model_id, job.owner) for job in profiling] == [(variant.id, OWNER)]
    # Converting again with profiling finds the variant there, and queues no second one.
    with pytest.raises(Conflict, match="its profiling is queued"):
        await hub.models.register_converted(
            source.id, Engine.ONNX, onnx(), conversion_check(), profile=True, job_id=job_id,
            worker=WORKER, claimant=TOKEN,
        )  # fmt: skip
    assert sum(job.kind is JobKind.PROFILE for job in hub.queue.jobs.values()) == 1
    # Asked for without profiling, the conversion is refused at once: nothing to do.
    with pytest.raises(Conflict, match="already has its ONNX variant"):
        await hub.jobs.convert(source.id, [Engine.ONNX], False, OWNER)


async def test_results_are_written_only_by_the_jobs_worker_for_the_jobs_model() -> None:
    hub = fake_hub()
    model, other = await plain(hub, version=1), await plain(hub, version=2)
    await hub.jobs.profile(model.id, [1], None, OWNER)
    job_id = await claimed(hub, JobKind.PROFILE)
    static = StaticProfileResult(parameters=1, flops=2, memory=3, mread=4, mwrite=5, mrw=6)
    with pytest.raises(BadUserInput, match=f"works on model {model.id}"):
        await hub.models.set_static_result(other.id, static, job_id, WORKER, TOKEN)
    with pytest.raises(Conflict):
        await hub.models.set_static_result(model.id, static, job_id, "intruder", TOKEN)
    with pytest.raises(BadUserInput, match="give the job"):
        await hub.models.set_static_result(model.id, static, None, WORKER, TOKEN)
    written = await hub.models.set_static_result(model.id, static, job_id, WORKER, TOKEN)
    assert written.profile_result.static_result == static
    await hub.models.replace_dynamic_result(model.id, result(1, 2, 3), True, job_id, WORKER, TOKEN)
    await hub.jobs.finish(job_id, WORKER, TOKEN, None, "done", retryable=True)
    with pytest.raises(Conflict, match="SUCCEEDED"):
        await hub.models.set_static_result(model.id, static, job_id, WORKER, TOKEN)


async def test_a_cancel_is_answered_once_the_write_under_way_has_landed() -> None:
    hub = fake_hub()
    model = await plain(hub)
    await hub.jobs.profile(model.id, [1], None, OWNER)
    job_id = await claimed(hub, JobKind.PROFILE)
    order = []
    async with hub.jobs.fenced(job_id, WORKER, model.id, TOKEN):
        cancel = asyncio.create_task(hub.jobs.cancel(job_id))
        await asyncio.sleep(0)  # the cancel is under way, waiting for this write
        order.append("write landed")
    cancelled = await cancel
    order.append("cancel answered")
    assert order == ["write landed", "cancel answered"]
    assert cancelled.status is JobStatus.CANCELLED
    with pytest.raises(Conflict, match="already ended"):
        await hub.jobs.cancel(job_id)


# Retries, hand-backs, lost workers, turns


async def test_failed_attempts_are_retried_until_used_up_then_the_job_fails() -> None:
    hub = fake_hub()
    model = await plain(hub)
    job = await hub.jobs.profile(model.id, [1], None, OWNER)
    for attempt in (1, 2):
        await claimed(hub, JobKind.PROFILE)
        again = await hub.jobs.finish(job.id, WORKER, TOKEN, "boom", None, retryable=True)
        assert (again.status, again.attempts, again.error) == (JobStatus.QUEUED, attempt, None)
        assert again.log[-1].message == f"attempt {attempt} failed, queued again: boom"
    await claimed(hub, JobKind.PROFILE)
    failed = await hub.jobs.finish(job.id, WORKER, TOKEN, "boom", None, retryable=True)
    assert (failed.status, failed.attempts, failed.error) == (JobStatus.FAILED, 3, "boom")
    # A failure the worker calls final fails at once; a success succeeds.
    second = await hub.jobs.profile(model.id, [1], None, OWNER)
    await claimed(hub, JobKind.PROFILE)
    final = await hub.jobs.finish(second.id, WORKER, TOKEN, "bad model", None, retryable=False)
    assert (final.status, final.attempts) == (JobStatus.FAILED, 1)
    third = await hub.jobs.profile(model.id, [1], None, OWNER)
    await claimed(hub, JobKind.PROFILE)
    done = await hub.jobs.finish(third.id, WORKER, TOKEN, None, "measured", retryable=True)
    assert (done.status, done.progress) == (JobStatus.SUCCEEDED, 1.0)
    assert [entry.message for entry in done.log[-2:]] == ["measured", "succeeded"]


async def test_a_lost_workers_job_is_taken_over_until_its_attempts_are_used_up() -> None:
    hub = fake_hub()
    model = await plain(hub)
    job = await hub.jobs.profile(model.id, [1], None, OWNER)
    start = hub.queue.now()
    for attempt in range(3):
        hub.queue.now = lambda attempt=attempt: start + timedelta(seconds=100 * attempt)
        taken = await hub.jobs.claim(f"w{attempt}", [], 60, None, TOKEN)
        assert taken is not None and (taken.id, taken.attempts) == (job.id, attempt + 1)
    hub.queue.now = lambda: start + timedelta(seconds=1000)
    assert await hub.jobs.claim("w9", [], 60, None, TOKEN) is None
    failed = hub.queue.jobs[job.id]
    assert failed.status is JobStatus.FAILED and "stopped answering" in (failed.error or "")


async def test_a_handed_back_job_is_queued_again_without_using_an_attempt() -> None:
    hub = fake_hub()
    model = await plain(hub)
    job = await hub.jobs.profile(model.id, [1], None, OWNER)
    await claimed(hub, JobKind.PROFILE)
    back = await hub.jobs.release(job.id, WORKER, TOKEN, "stopping")
    assert (back.status, back.attempts, back.worker) == (JobStatus.QUEUED, 0, None)
    with pytest.raises(Conflict, match="not held"):
        await hub.jobs.release(job.id, WORKER, TOKEN, "again")


async def test_owners_take_turns_and_lanes_keep_kinds_apart() -> None:
    hub = fake_hub()
    model = await convertible(hub)
    alices = [await hub.jobs.profile(model.id, [1], None, "alice") for _ in range(3)]
    bobs = await hub.jobs.profile(model.id, [1], None, "bob")
    conversion = await hub.jobs.convert(model.id, None, False, "carol")
    assert (await hub.jobs.claim("w1", [], 60, [JobKind.CONVERT], TOKEN)).id == conversion.id  # type: ignore[union-attr]
    first = await hub.jobs.claim("w2", [], 60, [JobKind.PROFILE], TOKEN)
    second = await hub.jobs.claim("w3", [], 60, [JobKind.PROFILE], TOKEN)
    assert [first.id, second.id] == [alices[0].id, bobs.id]  # type: ignore[union-attr]
    with pytest.raises(BadUserInput, match="kinds"):
        await hub.jobs.claim("w4", [], 60, [], TOKEN)


async def test_deleting_a_model_forgets_its_queued_jobs_and_cancels_its_running_ones() -> None:
    hub = fake_hub()
    model = await plain(hub)
    running = await hub.jobs.profile(model.id, [1], None, OWNER)
    await claimed(hub, JobKind.PROFILE)
    queued = await hub.jobs.profile(model.id, [2], None, OWNER)
    await hub.models.delete(model.id, cascade=False)
    assert queued.id not in hub.queue.jobs
    assert hub.queue.jobs[running.id].status is JobStatus.CANCELLED
    stopped = await hub.jobs.heartbeat(running.id, WORKER, TOKEN, 0.5, None, 60)
    assert stopped.status is JobStatus.CANCELLED  # what tells the worker to stop
