"""The rules of registering, updating, deleting, naming and choosing models, run on the
use cases over in-memory fakes of their ports (``fakes.py``): no database, no server,
no torch. The end-to-end tests check the same paths through the real ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeHub, FakeUpload, fake_hub, model_fields

from modelci.core import choosing
from modelci.core.domain import (
    DeviceKind,
    DynamicProfileResult,
    Engine,
    IOShape,
    JobKind,
    JobStatus,
    MLModel,
    Task,
    WeightFormat,
)
from modelci.core.errors import BadUserInput, Conflict, NotFound, TooManyRequests
from modelci.core.usecases import MAX_ALIASES_PER_MODEL

OWNER = "alice"
INPUTS = [IOShape.model_validate({"name": "input", "shape": [-1, 3, 8, 8], "dtype": "TYPE_FP32"})]
TORCHSCRIPT = {"engine": "TORCHSCRIPT", "framework": "PyTorch"}


def torchscript(data: bytes = b"a torchscript archive") -> FakeUpload:
    return FakeUpload(data, "net.pt", format=WeightFormat.TORCHSCRIPT)


def onnx(data: bytes = b"an onnx graph") -> FakeUpload:
    return FakeUpload(data, "net.onnx", format=WeightFormat.ONNX, inputs=INPUTS, outputs=INPUTS)


async def plain(hub: FakeHub, data: bytes = b"weights", **fields: Any) -> MLModel:
    """A model stored only (no job queued): a file the hub does not read."""
    return await hub.models.register(
        model_fields(**fields), FakeUpload(data), convert=False, profile=False, owner=OWNER
    )


def nothing_staged(hub: FakeHub) -> bool:
    return not hub.registry.intake.staged


# Registering


async def test_register_stores_the_model_and_queues_its_jobs_for_its_owner() -> None:
    hub = fake_hub()
    fields = model_fields(**TORCHSCRIPT, inputs=INPUTS)
    model = await hub.models.register(
        fields, torchscript(), convert=True, profile=True, owner=OWNER
    )
    assert (await hub.registry.get(model.id)).weight.format is WeightFormat.TORCHSCRIPT
    jobs = {job.kind: job for job in hub.queue.jobs.values()}
    assert set(jobs) == {JobKind.CONVERT, JobKind.PROFILE}
    assert jobs[JobKind.CONVERT].targets == [Engine.ONNX, Engine.TRT]
    assert jobs[JobKind.CONVERT].profile_variants
    assert all(job.owner == OWNER and job.model_id == model.id for job in jobs.values())
    assert all(job.max_attempts == 3 for job in jobs.values())
    assert hub.registry.intake.stored == {model.weight.sha256: b"a torchscript archive"}
    assert nothing_staged(hub)


async def test_an_onnx_file_gives_its_inputs_and_a_torchscript_one_needs_them_declared() -> None:
    hub = fake_hub()
    model = await hub.models.register(
        model_fields(engine="ONNX"), onnx(), convert=False, profile=True, owner=OWNER
    )
    assert model.inputs == INPUTS and model.outputs == INPUTS
    with pytest.raises(BadUserInput, match="needs the model's input shapes") as refused:
        await hub.models.register(
            model_fields(**TORCHSCRIPT, version=2), torchscript(), convert=True, profile=False,
            owner=OWNER,
        )  # fmt: skip
    assert refused.value.extensions["field"] == "inputs"
    assert "Nothing was stored" in str(refused.value)
    assert [each.version for each in hub.registry.models.values()] == [1]
    assert len(hub.queue.jobs) == 1 and nothing_staged(hub)
    # Only stored, nothing to feed: the same file is welcome.
    await hub.models.register(
        model_fields(**TORCHSCRIPT, version=2), torchscript(), convert=False, profile=False,
        owner=OWNER,
    )  # fmt: skip


async def test_a_declaration_the_file_contradicts_is_refused_saying_what_to_declare() -> None:
    hub = fake_hub()
    with pytest.raises(
        BadUserInput, match=r"the file is a TorchScript archive.*engine TORCHSCRIPT"
    ):
        await hub.models.register(
            model_fields(engine="ONNX"), torchscript(), convert=False, profile=False, owner=OWNER
        )
    assert not hub.registry.models and not hub.registry.intake.stored and nothing_staged(hub)


async def test_a_key_taken_is_a_conflict_naming_its_holder_before_the_file_is_checked() -> None:
    hub = fake_hub()
    first = await plain(hub)
    checks = len(hub.registry.intake.checks)
    with pytest.raises(Conflict, match=f"already registered: {first.id}") as refused:
        await plain(hub, b"other bytes")
    assert refused.value.extensions["modelId"] == first.id
    assert len(hub.registry.intake.checks) == checks  # refused before any inspection
    assert list(hub.registry.intake.stored) == [first.weight.sha256]


async def test_the_quota_refuses_a_registration_whose_jobs_would_pass_it() -> None:
    hub = fake_hub(max_queued_per_owner=3)
    model = await plain(hub)
    for _ in range(3):
        await hub.jobs.profile(model.id, [1], None, OWNER)
    with pytest.raises(TooManyRequests, match="3 jobs queued"):
        await hub.jobs.profile(model.id, [1], None, OWNER)
    with pytest.raises(TooManyRequests):
        await hub.models.register(
            model_fields(engine="ONNX", version=2), onnx(), convert=False, profile=True,
            owner=OWNER,
        )  # fmt: skip
    assert len(hub.registry.models) == 1 and len(hub.queue.jobs) == 3
    # Another owner's quota is their own; and a cancelled job makes room again.
    await hub.jobs.profile(model.id, [1], None, "bob")
    await hub.jobs.cancel(next(iter(hub.queue.jobs)))
    await hub.jobs.profile(model.id, [1], None, OWNER)


async def test_a_registration_refused_by_the_quota_after_storing_takes_its_model_back() -> None:
    """Registrations of one owner at the same instant all pass the count before the
    insert; the one that finds the quota full when its job is queued takes back what it
    stored (here, another registration's job lands while this one's file is checked)."""
    hub = fake_hub(max_queued_per_owner=1)
    other = await plain(hub, b"other", version=9)
    check = hub.registry.intake.checked

    def checked_while_another_queues(weight: Any, fields: Any, owner: Any) -> Any:
        async def queued_meanwhile() -> None:
            await hub.jobs.profile(other.id, [1], None, OWNER)

        context = check(weight, fields, owner)

        class Meanwhile:
            async def __aenter__(self) -> Any:
                await queued_meanwhile()
                return await context.__aenter__()

            async def __aexit__(self, *exc: Any) -> Any:
                return await context.__aexit__(*exc)

        return Meanwhile()

    hub.registry.intake.checked = checked_while_another_queues  # type: ignore[method-assign]
    with pytest.raises(TooManyRequests, match="1 jobs queued"):
        await hub.models.register(
            model_fields(engine="ONNX"), onnx(), convert=False, profile=True, owner=OWNER
        )
    assert list(hub.registry.models) == [other.id]  # the model stored is taken back
    assert list(hub.registry.intake.stored) == [other.weight.sha256]  # and its bytes
    assert [job.model_id for job in hub.queue.jobs.values()] == [other.id]
    assert nothing_staged(hub)


# Updating


async def test_update_with_a_weight_replaces_the_bytes_and_reads_the_files_inputs() -> None:
    hub = fake_hub()
    unnamed = FakeUpload(b"old graph", "net.onnx", format=WeightFormat.ONNX)  # says no inputs
    model = await hub.models.register(
        model_fields(engine="ONNX"), unnamed, convert=False, profile=False, owner=OWNER
    )
    assert not model.inputs
    upload = FakeUpload(b"new graph", "v2.onnx", format=WeightFormat.ONNX, inputs=INPUTS)
    updated = await hub.models.update(model.id, {"dataset": "CIFAR10"}, upload, owner=OWNER)
    assert updated.dataset == "CIFAR10" and updated.inputs == INPUTS
    assert updated.weight.filename == "v2.onnx"
    assert list(hub.registry.intake.stored) == [updated.weight.sha256]  # the old bytes went
    # A file its fields contradict changes nothing.
    with pytest.raises(BadUserInput, match="the file is a TorchScript archive"):
        await hub.models.update(model.id, {}, torchscript(), owner=OWNER)
    assert await hub.registry.get(model.id) == updated
    assert nothing_staged(hub)


async def test_update_without_a_weight_keeps_the_declaration_true_of_the_stored_file() -> None:
    hub = fake_hub()
    model = await hub.models.register(
        model_fields(engine="ONNX"), onnx(), convert=False, profile=False, owner=OWNER
    )
    with pytest.raises(BadUserInput, match="the file is an ONNX model"):
        await hub.models.update(model.id, {"engine": Engine.TORCHSCRIPT}, None)
    with pytest.raises(BadUserInput) as invalid:
        await hub.models.update(model.id, {"version": 0}, None)
    assert invalid.value.extensions["fields"] == ["input.version"]
    assert (await hub.models.update(model.id, {"version": 2}, None)).version == 2
    other = await plain(hub, version=3, engine="ONNX")
    with pytest.raises(Conflict):
        await hub.models.update(other.id, {"version": 2}, None)
    with pytest.raises(NotFound):
        await hub.models.update("0" * 24, {"version": 2}, None)


# Deleting


async def converted(hub: FakeHub, source: MLModel, profile: bool = False) -> MLModel:
    """The source's ONNX variant, registered as a worker does for its conversion job."""
    await hub.jobs.convert(source.id, [Engine.ONNX], profile, OWNER)
    job = await hub.jobs.claim("w", [], 60, [JobKind.CONVERT], "worker-token")
    assert job is not None and job.model_id == source.id
    return await hub.models.register_converted(
        source.id, Engine.ONNX, onnx(b"converted"), conversion_check(), profile=profile,
        job_id=job.id, worker="w", claimant="worker-token",
    )  # fmt: skip


def conversion_check() -> Any:
    from modelci.core.domain import ConversionCheck

    return ConversionCheck.model_validate(
        {"source_engine": "TORCHSCRIPT", "batch_sizes": [1], "max_abs_diff": 0.0}
        | {"max_rel_diff": 0.0, "tolerance": 1e-4}
    )


async def test_a_delete_cascades_to_variants_aliases_and_jobs_only_when_asked() -> None:
    hub = fake_hub()
    source = await hub.models.register(
        model_fields(**TORCHSCRIPT, inputs=INPUTS), torchscript(), convert=False,
        profile=False, owner=OWNER,
    )  # fmt: skip
    variant = await converted(hub, source)
    assert variant.parent_model_id == source.id and variant.weight.filename == "net.onnx"
    with pytest.raises(Conflict, match="converted variant"):
        await hub.models.delete(source.id, cascade=False)
    await hub.models.set_alias("resnet-prod", source.id)
    await hub.models.set_alias("resnet-onnx", variant.id)
    running = await hub.jobs.profile(variant.id, [1], None, OWNER)
    await hub.jobs.claim("w", [], 60, [JobKind.PROFILE], "worker-token")
    queued = await hub.jobs.profile(source.id, [1], None, OWNER)
    with pytest.raises(Conflict, match="resnet-onnx") as named:
        await hub.models.delete(variant.id, cascade=False)
    assert named.value.extensions["aliases"] == ["resnet-onnx"]
    assert len(hub.registry.models) == 2 and len(hub.aliases.aliases) == 2

    assert (await hub.models.delete(source.id, cascade=True)).id == source.id
    assert not hub.registry.models and not hub.aliases.aliases
    assert not hub.registry.intake.stored
    assert queued.id not in hub.queue.jobs  # a queued job is forgotten
    assert hub.queue.jobs[running.id].status is JobStatus.CANCELLED  # a running one stops


# Aliases


async def test_an_alias_points_moves_resolves_and_goes() -> None:
    hub = fake_hub()
    first, second = await plain(hub, version=1), await plain(hub, version=2)
    await hub.models.set_alias("prod", first.id)
    assert (await hub.models.named("prod")).id == first.id
    moved = await hub.models.set_alias("prod", second.id)
    assert moved.model_id == second.id and (await hub.models.named("prod")).id == second.id
    assert await hub.aliases.of_models([first.id, second.id]) == [[], ["prod"]]
    assert (await hub.models.delete_alias("prod")).model_id == second.id
    with pytest.raises(NotFound):
        await hub.models.named("prod")
    with pytest.raises(NotFound):
        await hub.models.delete_alias("prod")
    with pytest.raises(NotFound):
        await hub.models.set_alias("prod", "f" * 24)
    for bad in ("-starts-badly", "a b", first.id):
        with pytest.raises(BadUserInput):
            await hub.models.set_alias(bad, first.id)
    for n in range(MAX_ALIASES_PER_MODEL):
        await hub.models.set_alias(f"name-{n}", first.id)
    with pytest.raises(Conflict, match="aliases, the most one model may have"):
        await hub.models.set_alias("one-more", first.id)
    await hub.models.set_alias("name-0", first.id)  # pointing one it has again is no new one


# Choosing


def result(
    batch: int, p99_ms: float, throughput: float, device: str = "cpu"
) -> DynamicProfileResult:
    latency = {"avg": p99_ms / 2000, "p50": p99_ms / 2000, "p95": p99_ms / 1000}
    latency["p99"] = p99_ms / 1000
    return DynamicProfileResult.model_validate(
        {
            "ip": "10.0.0.1",
            "device_id": device,
            "device_name": "Intel Xeon" if device == "cpu" else "NVIDIA T4",
            "batch": batch,
            "memory": {"total_memory": 1024, "memory_usage": 512, "utilization": 0.5},
            "latency": {
                stage: latency
                for stage in (
                    "initialization_latency",
                    "preprocess_latency",
                    "inference_latency",
                    "postprocess_latency",
                )
            },
            "throughput": {
                stage: throughput
                for stage in (
                    "batch_formation_throughput",
                    "preprocess_throughput",
                    "inference_throughput",
                    "postprocess_throughput",
                )
            },
        }
    )


async def test_recommend_and_compare_weigh_the_results_the_registry_holds() -> None:
    hub = fake_hub()
    fast, wide, bare = [await plain(hub, version=version) for version in (1, 2, 3)]
    other = await plain(hub, version=1, task="Object_Detection")
    for model_id, results in (
        (fast.id, [result(1, 4, 250), result(8, 12, 800), result(8, 2, 5000, "cuda:0")]),
        (wide.id, [result(1, 3, 300), result(8, 9, 700)]),
        (other.id, [result(1, 1, 9000)]),
    ):
        for each in results:
            await hub.models.add_dynamic_result(model_id, each)

    found = await hub.models.recommend(
        Task.Image_Classification, "ResNet50", None, choosing.Goal(max_p99_latency=0.010)
    )
    best = [(o.model.id, o.result.device_id, o.result.batch) for o in found.options]
    assert best[0] == (fast.id, "cuda:0", 8)
    assert (wide.id, "cpu", 8) in best and (fast.id, "cpu", 8) not in best
    assert [model.id for model in found.not_profiled] == [bare.id]
    assert found.candidates == 3 and not found.truncated

    models, rows = await hub.models.compare([wide.id, fast.id])
    assert [model.id for model in models] == [wide.id, fast.id]
    by_place = {(row.device_id, row.batch): row.results for row in rows}
    assert by_place[("cpu", 8)][0] is not None and by_place[("cuda:0", 8)][0] is None
    with pytest.raises(BadUserInput, match="more than once"):
        await hub.models.compare([fast.id, fast.id])
    with pytest.raises(NotFound) as missing:
        await hub.models.compare([fast.id, "f" * 24])
    assert missing.value.extensions["ids"] == ["f" * 24]


async def test_a_recommendation_by_device_and_the_closest_when_nothing_meets_the_goal() -> None:
    hub = fake_hub()
    fast, wide = await plain(hub, version=1), await plain(hub, version=2)
    for model_id, results in (
        (fast.id, [result(1, 4, 250), result(8, 12, 800), result(8, 2, 5000, "cuda:0")]),
        (wide.id, [result(1, 3, 300), result(8, 9, 700)]),
    ):
        for each in results:
            await hub.models.add_dynamic_result(model_id, each)

    async def options(goal: choosing.Goal) -> choosing.Recommendation:
        return await hub.models.recommend(Task.Image_Classification, None, None, goal)

    def brief(option: choosing.Option) -> tuple[str, str, int]:
        return option.model.id, option.result.device_id, option.result.batch

    gpu = await options(choosing.Goal(device_kind=DeviceKind.CUDA))
    assert [brief(option) for option in gpu.options] == [(fast.id, "cuda:0", 8)]
    assert gpu.options[0].on_frontier and [m.id for m in gpu.not_profiled] == [wide.id]
    by_name = await options(choosing.Goal(device="NVIDIA T4"))
    assert [brief(option) for option in by_name.options] == [(fast.id, "cuda:0", 8)]
    quick = await options(choosing.Goal(max_p99_latency=0.005))
    assert [brief(option) for option in quick.options] == [
        (fast.id, "cuda:0", 8),
        (wide.id, "cpu", 1),
        (fast.id, "cpu", 1),
    ]
    none = await options(choosing.Goal(max_p99_latency=0.002, device="cpu"))
    assert none.options == [] and none.closest is not None
    assert brief(none.closest) == (wide.id, "cpu", 1)  # 3 ms: 50 % over
    assert none.closest.shortfalls == [choosing.Shortfall.OVER_LATENCY]
    assert none.rejected[0] is none.closest and len(none.rejected) == 4


# What these tests stand on


def test_the_rules_run_without_a_database_a_server_or_torch() -> None:
    """The fakes, the use cases and these tests import no database driver, web
    framework nor torch."""
    tests = Path(__file__).parent
    program = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import fakes, test_rules_models, test_rules_jobs; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'pymongo', 'bson', 'strawberry', 'starlette', 'graphql'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(tests)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
