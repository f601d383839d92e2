"""The ``where:`` input of ``models``: a search over models, as GraphQL inputs, read into
the domain's ``ModelWhere``."""

from __future__ import annotations

from collections.abc import Sequence

import strawberry
from pydantic import ValidationError
from strawberry.experimental import pydantic as strawberry_pydantic

from modelci.core import domain
from modelci.core.errors import BadUserInput, invalid_input, validated

from .types import Engine, Framework, ModelStatus, ProfileFilterInput, Task

LITERAL = "taken literally, at most 256 characters"


@strawberry_pydantic.input(
    model=domain.TextMatch,
    description="Text a field must match, every part given: `equals` exactly as stored; "
    f"`prefix` (starts with) and `contains`, ignoring case, the text {LITERAL} (no "
    "pattern characters).",
)
class TextMatchInput:
    equals: strawberry.auto
    prefix: strawberry.auto
    contains: strawberry.auto


@strawberry_pydantic.input(
    model=domain.VersionRange, description="Bounds the version must meet, every one given."
)
class VersionRangeInput:
    eq: strawberry.auto
    gt: strawberry.auto
    gte: strawberry.auto
    lt: strawberry.auto
    lte: strawberry.auto


@strawberry_pydantic.input(
    model=domain.MetricCondition,
    description="A metric the model has, by name, within every bound given (none: any value).",
)
class MetricConditionInput:
    name: strawberry.auto
    eq: strawberry.auto
    gt: strawberry.auto
    gte: strawberry.auto
    lt: strawberry.auto
    lte: strawberry.auto


@strawberry_pydantic.input(
    model=domain.NameValueCondition,
    description="A tag or a param, by name: with this value (`equals`), with any value, "
    "or absent (`exists: false`).",
)
class NameValueConditionInput:
    name: strawberry.auto
    equals: strawberry.auto
    exists: strawberry.auto


@strawberry_pydantic.input(
    model=domain.TimeRange,
    description="Strictly after `after` and strictly before `before` (either may be left out).",
)
class TimeRangeInput:
    after: strawberry.auto
    before: strawberry.auto


@strawberry.input(
    description="A search over models: every condition given holds (and each of `and`), "
    "at least one of `or`, and not `not`. Tags, metrics and params each hold on some "
    f"entry of the model's. At most {domain.MAX_WHERE_DEPTH} levels of and/or/not and "
    f"{domain.MAX_WHERE_CONDITIONS} conditions in all (each tag, metric or param one)."
)
class ModelWhereInput:
    architecture: TextMatchInput | None = None
    dataset: TextMatchInput | None = None
    task: Task | None = None
    framework: Framework | None = None
    engine: Engine | None = None
    status: ModelStatus | None = strawberry.field(
        default=None, description="One of the model's statuses."
    )
    version: VersionRangeInput | None = None
    tags: list[NameValueConditionInput] | None = strawberry.field(
        default=None, description="Every one holds."
    )
    metrics: list[MetricConditionInput] | None = strawberry.field(
        default=None, description="Every one holds."
    )
    params: list[NameValueConditionInput] | None = strawberry.field(
        default=None, description="Every one holds."
    )
    created: TimeRangeInput | None = strawberry.field(
        default=None, description="When the model was registered."
    )
    profile: ProfileFilterInput | None = strawberry.field(
        default=None, description="One dynamic result meets every condition here."
    )
    and_: list[ModelWhereInput] | None = strawberry.field(
        default=None, name="and", description="Every one holds."
    )
    or_: list[ModelWhereInput] | None = strawberry.field(
        default=None, name="or", description="At least one holds."
    )
    not_: ModelWhereInput | None = strawberry.field(
        default=None, name="not", description="It does not hold."
    )


def model_where(given: ModelWhereInput, path: str = "where", depth: int = 1) -> domain.ModelWhere:
    """The domain's search, or BAD_USER_INPUT naming what is wrong: bounds are checked on
    the way down, before anything past them is read."""
    if depth > domain.MAX_WHERE_DEPTH:
        raise BadUserInput(
            f"{path}: and/or/not nest at most {domain.MAX_WHERE_DEPTH} levels deep",
            field=path,
        )
    fields: dict[str, object] = {}
    for name in ("architecture", "dataset", "version", "created"):
        value = getattr(given, name)
        if value is not None:
            fields[name] = validated(value, f"{path}.{name}")
    for name in ("tags", "metrics", "params"):
        items = getattr(given, name)
        if items is not None:
            bounded(items, f"{path}.{name}")
            fields[name] = [validated(item, f"{path}.{name}.{i}") for i, item in enumerate(items)]
    for name in ("task", "framework", "engine", "status"):
        fields[name] = getattr(given, name)
    if given.profile is not None:
        fields["profile"] = profile_filter(given.profile, f"{path}.profile")
    for name, children in (("and", given.and_), ("or", given.or_)):
        if children is not None:
            bounded(children, f"{path}.{name}")
            fields[name] = [
                model_where(child, f"{path}.{name}.{i}", depth + 1)
                for i, child in enumerate(children)
            ]
    if given.not_ is not None:
        fields["not"] = model_where(given.not_, f"{path}.not", depth + 1)
    try:
        return domain.ModelWhere.model_validate(fields)
    except ValidationError as error:
        raise invalid_input(error, path) from None


def profile_filter(
    given: ProfileFilterInput | None, path: str = "profile"
) -> domain.ProfileFilter | None:
    """The domain's profile filter, or BAD_USER_INPUT for one no result could meet."""
    if given is None:
        return None
    where = validated(given, path)
    if where.batch is not None and (where.min_batch is not None or where.max_batch is not None):
        raise BadUserInput(
            f"{path}: give batch (one size) or minBatch/maxBatch (a range), not both",
            field=f"{path}.batch",
        )
    low, high = where.min_batch, where.max_batch
    if low is not None and high is not None and low > high:
        raise BadUserInput(
            f"{path}: minBatch {low} is above maxBatch {high}", field=f"{path}.minBatch"
        )
    return where


def bounded(items: Sequence[object], path: str) -> None:
    if len(items) > domain.MAX_WHERE_CONDITIONS:
        raise BadUserInput(
            f"{path}: at most {domain.MAX_WHERE_CONDITIONS} conditions (got {len(items)})",
            field=path,
        )
