"""A listing's filter as a MongoDB query: the legacy equality arguments, the profile
filter and a search (``ModelWhere``), all of them at once.

The query is written so that each database reads it cheaply:
- a conjunction is one document of field conditions, not an ``$and``: SecantusDB, the
  embedded database, reads every document for a query with a top-level operator, but
  keeps to an index (and to the listing's time slices) for plain fields;
- two conditions on entries of the same array (``tags``, ``metric``, ``params``, the
  dynamic results) are one ``$all`` of ``$elemMatch`` es: each holds on some entry;
- ``or`` is distributed over ``and`` (disjunctive normal form) while that gives at most
  ``MAX_BRANCHES`` branches, so that the query is one ``$or`` of plain conjunctions,
  which the time-sliced listing reads branch by branch (``listing.py``); past that the
  query keeps its nesting, which is as right and reads more;
- text is matched with a regular expression built here from the text taken literally
  (every ASCII character but letters and digits escaped): no pattern a client sends
  reaches the database.
"""

from __future__ import annotations

import re
from itertools import product
from typing import Any

from modelci.core.domain import (
    DeviceKind,
    ModelFilter,
    ModelWhere,
    NameValueCondition,
    ProfileFilter,
    TextMatch,
    given_bounds,
)

from .storage import DYNAMIC_RESULTS, to_bson

Query = dict[str, Any]
Branches = list[Query]  # any one of these conjunctions

# The most branches ``or`` may be spread into before the query keeps its nesting.
MAX_BRANCHES = 8

# How workers name devices ("cpu", "cuda:0"): a device given in this form is an id, any
# other text a device's name (its model, as the worker read it: "NVIDIA A100-SXM4-40GB").
DEVICE_ID = re.compile(r"cpu|[a-z][a-z0-9_]*:\d+")

OPERATORS = {"eq": "$eq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}


def profile_condition(where: ProfileFilter) -> Query:
    """The query part that selects models with one dynamic result meeting every condition
    of ``where``: one ``$elemMatch``, so that all of them hold on the same result; a
    result without a p99 never meets a bound on it, as a missing value compares with no
    number. A device is matched by id or by name as its form says (``DEVICE_ID``), not
    by an ``$or`` of both: SecantusDB, the embedded database, reads every document for
    an ``$or`` (1.5 s at 10 000 models) where one ``$elemMatch`` keeps to the listing's
    time slices."""
    match: dict[str, Any] = {}
    device_id: dict[str, Any] = {}
    if where.device is not None:
        if DEVICE_ID.fullmatch(where.device):
            device_id["$eq"] = where.device
        else:
            match["device_name"] = where.device
    if where.device_kind is DeviceKind.CPU:
        device_id["$in"] = ["cpu"]
    elif where.device_kind is not None:
        device_id["$ne"] = "cpu"
    if device_id:
        match["device_id"] = device_id
    batch = {
        operator: bound
        for operator, bound in (
            ("$eq", where.batch),
            ("$gte", where.min_batch),
            ("$lte", where.max_batch),
        )
        if bound is not None
    }
    if batch:
        match["batch"] = batch
    for path, operator, bound in (
        ("latency.inference_latency.p99", "$lte", where.max_p99_latency),
        ("latency.inference_latency.p50", "$lte", where.max_p50_latency),
        ("throughput.inference_throughput", "$gte", where.min_throughput),
    ):
        if bound is not None:
            match[path] = {operator: bound}
    if where.stable_only:
        match["measurement.stable"] = True
    if not match:  # no condition: any dynamic result at all
        return {f"{DYNAMIC_RESULTS}.0": {"$exists": True}}
    return {DYNAMIC_RESULTS: {"$elemMatch": match}}


def models_query(where: ModelFilter) -> Query:
    """The query of a listing: every legacy argument given, and ``where.where``."""
    legacy: Query = {
        field: to_bson(value)
        for field, value in where.model_dump(
            exclude={"status", "profile", "where"}, exclude_none=True
        ).items()
    }
    if where.status is not None:
        legacy["model_status"] = where.status.value
    parts: list[Branches] = [[legacy]]
    if where.profile is not None:
        parts.append([profile_condition(where.profile)])
    if where.where is not None:
        parts.append(branches(where.where))
    return as_query(conjunction(parts))


def search_query(where: ModelWhere) -> Query:
    """The query of a search alone."""
    return as_query(branches(where))


# Text


def literal_pattern(text: str) -> str:
    """A regular expression matching ``text`` itself: every ASCII character but letters
    and digits escaped, so nothing in it is a pattern character (PCRE, as Python's
    ``re``, reads a backslash before any of them as the character itself)."""
    return "".join(
        "\\" + character if character.isascii() and not character.isalnum() else character
        for character in text
    )


def text_conditions(field: str, match: TextMatch) -> list[Query]:
    found: list[Query] = []
    if match.equals is not None:
        found.append({field: match.equals})
    if match.prefix is not None:
        found.append({field: {"$regex": "^" + literal_pattern(match.prefix), "$options": "i"}})
    if match.contains is not None:
        found.append({field: {"$regex": literal_pattern(match.contains), "$options": "i"}})
    return found


def bounds(given: dict[str, Any]) -> Any:
    """``{gt: 1}`` as ``{"$gt": 1}``; a lone ``eq`` as the plain value (an index's
    equality)."""
    if list(given) == ["eq"]:
        return given["eq"]
    return {OPERATORS[name]: value for name, value in given.items()}


def entry_condition(field: str, condition: NameValueCondition) -> Query:
    """A tag's or a param's condition, on its array of ``{name, value}`` entries."""
    if not condition.exists:
        return {field: {"$not": {"$elemMatch": {"name": condition.name}}}}
    entry: dict[str, Any] = {"name": condition.name}
    if condition.equals is not None:
        entry["value"] = condition.equals
    return {field: {"$elemMatch": entry}}


def own_conditions(where: ModelWhere) -> list[Query]:
    """The conditions a search gives itself, each a one-field query (and/or/not aside)."""
    found: list[Query] = []
    for field, match in (("architecture", where.architecture), ("dataset", where.dataset)):
        if match is not None:
            found += text_conditions(field, match)
    for field, value in (
        ("task", where.task),
        ("framework", where.framework),
        ("engine", where.engine),
        ("model_status", where.status),
    ):
        if value is not None:
            found.append({field: value.value})
    if where.version is not None:
        found.append({"version": bounds(given_bounds(where.version))})
    for condition in where.tags or []:
        found.append(entry_condition("tags", condition))
    for condition in where.params or []:
        found.append(entry_condition("params", condition))
    for metric in where.metrics or []:
        entry: dict[str, Any] = {"name": metric.name}
        if given_bounds(metric):
            entry["value"] = {
                OPERATORS[name]: value for name, value in given_bounds(metric).items()
            }
        found.append({"metric": {"$elemMatch": entry}})
    if where.created is not None:
        created: dict[str, Any] = {}
        if where.created.after is not None:
            created["$gt"] = where.created.after
        if where.created.before is not None:
            created["$lt"] = where.created.before
        found.append({"create_time": created})
    if where.profile is not None:
        found.append(profile_condition(where.profile))
    return found


# Putting conditions together


def branches(where: ModelWhere) -> Branches:
    """The search as a disjunction of conjunctions (``MAX_BRANCHES`` at most)."""
    parts: list[Branches] = [[condition] for condition in own_conditions(where)]
    parts += [branches(child) for child in where.and_ or []]
    if where.or_:
        parts.append(disjunction([branches(child) for child in where.or_]))
    if where.not_ is not None:
        parts.append([{"$nor": [as_query(branches(where.not_))]}])
    return conjunction(parts)


def disjunction(parts: list[Branches]) -> Branches:
    spread = [branch for part in parts for branch in part]
    if len(spread) > MAX_BRANCHES:
        return [{"$or": spread}]
    return spread


def conjunction(parts: list[Branches]) -> Branches:
    """Every part holds: ``(a or b) and c`` is ``(a and c) or (b and c)`` while that
    gives at most ``MAX_BRANCHES`` branches; past that the parts stay nested."""
    found: Branches = [{}]
    for part in parts:
        if len(found) * len(part) > MAX_BRANCHES:
            found = [merged(as_query(found), as_query(part))]
        else:
            found = [merged(left, right) for left, right in product(found, part)]
    return found


def as_query(found: Branches) -> Query:
    return found[0] if len(found) == 1 else {"$or": found}


def elem_matches(condition: Any) -> list[Any] | None:
    """The ``$elemMatch`` es a condition on an array is made of (None: not only those)."""
    if not isinstance(condition, dict):
        return None
    if list(condition) == ["$elemMatch"]:
        return [condition]
    if list(condition) == ["$all"] and all(
        isinstance(each, dict) and list(each) == ["$elemMatch"] for each in condition["$all"]
    ):
        return list(condition["$all"])
    return None


def operators_only(condition: Any) -> bool:
    return (
        isinstance(condition, dict)
        and bool(condition)
        and all(isinstance(key, str) and key.startswith("$") for key in condition)
    )


def merged(left: Query, right: Query) -> Query:
    """Both conjunctions at once, as few top-level operators as can be: conditions on
    different fields side by side; on the same field, ``$elemMatch`` es gathered in an
    ``$all``, disjoint operators in one document, anything else in an ``$and``."""
    found = dict(left)
    for field, condition in right.items():
        if field not in found:
            found[field] = condition
            continue
        mine = found[field]
        if mine == condition:
            pass
        elif field in ("$and", "$nor"):  # none of a and none of b: none of both
            found[field] = [*mine, *condition]
        elif (ours := elem_matches(mine)) is not None and (
            theirs := elem_matches(condition)
        ) is not None:
            found[field] = {"$all": [*ours, *theirs]}
        elif (
            operators_only(mine)
            and operators_only(condition)
            and not set(mine) & set(condition)
            and "$regex" not in set(mine) | set(condition)
        ):
            found[field] = {**mine, **condition}
        else:  # a new list: ``left`` may be another branch's too
            found["$and"] = [*found.get("$and", []), {field: condition}]
    return found
