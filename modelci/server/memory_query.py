"""A listing's MongoDB query (``model_query.py``) answered over documents held in memory.

The read model (``read_model.py``) answers the same queries the database does, from the
same query documents, so that there is one filter with two readers rather than two
filters that may drift. Only what ``model_query`` writes is understood, with MongoDB's
meaning: field conditions on dotted paths (an array on the way is looked into, a number
names an element), ``$eq $ne $gt $gte $lt $lte $in $exists $regex $elemMatch $all
$not`` and ``$and $or $nor``. A comparison holds only between values of one kind
(numbers with numbers, text with text, times with times: a missing field or a ``null``
meets no bound), as in MongoDB's comparison order.

Memory holds a projection of each document (``VIEW_PATHS``), not all of it; a query that
names a path outside it, or an operator not listed, is ``Unanswerable`` and goes to the
database. ``check_query`` finds that out once per query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from .model_query import operators_only
from .storage import DYNAMIC_RESULTS

Document = Mapping[str, Any]
Query = Mapping[str, Any]

# The paths a model's projection keeps: every path ``model_query`` may filter on.
TOP_LEVEL = (
    "architecture",
    "framework",
    "engine",
    "version",
    "task",
    "dataset",
    "model_status",
    "parent_model_id",
    "create_time",
    "tags",
    "params",
    "metric",
)
RESULT_PATHS = (
    "ip",
    "device_id",
    "device_name",
    "batch",
    "latency.inference_latency.p50",
    "latency.inference_latency.p99",
    "throughput.inference_throughput",
    "measurement.stable",
)
VIEW_PATHS = frozenset(
    [*TOP_LEVEL, DYNAMIC_RESULTS, *(f"{DYNAMIC_RESULTS}.{path}" for path in RESULT_PATHS)]
)
ENTRY_FIELDS = ("name", "value")  # of tags, params and metric entries

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda left, right: left > right,
    "$gte": lambda left, right: left >= right,
    "$lt": lambda left, right: left < right,
    "$lte": lambda left, right: left <= right,
}
FIELD_OPERATORS = frozenset(
    {*COMPARISONS, "$eq", "$ne", "$in", "$exists", "$regex", "$options", "$elemMatch"}
    | {"$all", "$not"}
)


class Unanswerable(Exception):
    """A query memory cannot answer as the database would: ask the database."""


def path_tree(paths: tuple[str, ...]) -> dict[str, Any]:
    """Dotted paths as nested keys: ``("a.b", "a.c", "d")`` as ``{a: {b: {}, c: {}}, d: {}}``."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    return tree


RESULT_TREE = path_tree(RESULT_PATHS)


def view_of(document: Document) -> dict[str, Any]:
    """The projection of a decoded model document that queries are matched against."""
    view = {field: document[field] for field in TOP_LEVEL if field in document}
    results = (document.get("profile_result") or {}).get("dynamic_results")
    if isinstance(results, list):
        view["profile_result"] = {
            "dynamic_results": [projected(result, RESULT_TREE) for result in results]
        }
    return view


def projected(value: Any, tree: dict[str, Any]) -> Any:
    """What of ``value`` the tree's paths reach (a leaf of the tree keeps all below it)."""
    if not tree or not isinstance(value, Mapping):
        return value
    return {key: projected(value[key], below) for key, below in tree.items() if key in value}


# Which paths a query reads, checked against the projection


def check_query(query: Any, prefix: str = "") -> None:
    """``Unanswerable`` unless the query names only kept paths and known operators."""
    if not isinstance(query, Mapping):
        raise Unanswerable(f"not a query: {query!r}")
    for key, condition in query.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(condition, list):
                raise Unanswerable(f"{key} takes a list")
            for part in condition:
                check_query(part, prefix)
        elif key.startswith("$"):
            raise Unanswerable(f"operator {key}")
        else:
            check_condition(prefix + key, condition)


def check_condition(path: str, condition: Any) -> None:
    kept = path in VIEW_PATHS or entry_path(path) or element_path(path)
    if not kept:
        raise Unanswerable(f"path {path} is not kept in memory")
    if not operators_only(condition):
        return
    for operator, argument in condition.items():
        if operator not in FIELD_OPERATORS:
            raise Unanswerable(f"operator {operator}")
        if operator == "$elemMatch":
            if operators_only(argument):
                check_condition(path, argument)
            else:
                check_query(argument, path + ".")
        elif operator == "$all":
            for each in argument:
                check_condition(path, each if operators_only(each) else {"$eq": each})
        elif operator == "$not":
            check_condition(path, argument)


def entry_path(path: str) -> bool:
    """``tags.name``, ``metric.value``: a field of a metadata entry."""
    head, _, rest = path.partition(".")
    return head in ("tags", "params", "metric") and rest in ENTRY_FIELDS


def element_path(path: str) -> bool:
    """``profile_result.dynamic_results.0``: an element of the results, by place."""
    prefix = DYNAMIC_RESULTS + "."
    return path.startswith(prefix) and path[len(prefix) :].isdigit()


# Matching


def matches(query: Query, document: Document) -> bool:
    """Whether the document meets the query, as MongoDB reads it."""
    for key, condition in query.items():
        if key == "$and":
            if not all(matches(part, document) for part in condition):
                return False
        elif key == "$or":
            if not any(matches(part, document) for part in condition):
                return False
        elif key == "$nor":
            if any(matches(part, document) for part in condition):
                return False
        elif not field_meets(document, key, condition):
            return False
    return True


def field_meets(document: Document, path: str, condition: Any) -> bool:
    found = values_at(document, path.split("."))
    if not operators_only(condition):
        return any(equal(value, condition) for value in leaves(found))
    for operator, argument in condition.items():
        if not operator_holds(found, operator, argument, condition):
            return False
    return True


def operator_holds(found: list[Any], operator: str, argument: Any, condition: Any) -> bool:
    if operator == "$eq":
        return any(equal(value, argument) for value in leaves(found))
    if operator == "$ne":
        return not any(equal(value, argument) for value in leaves(found))
    if operator in COMPARISONS:
        compare = COMPARISONS[operator]
        return any(
            comparable(value, argument) and compare(*aligned(value, argument))
            for value in leaves(found)
        )
    if operator == "$in":
        return any(equal(value, each) for value in leaves(found) for each in argument)
    if operator == "$exists":
        return bool(found) == bool(argument)
    if operator == "$regex":
        pattern = compiled(argument, str(condition.get("$options", "")))
        return any(isinstance(value, str) and pattern.search(value) for value in leaves(found))
    if operator == "$options":
        return True  # read with $regex
    if operator == "$elemMatch":
        return any(element_meets(value, argument) for value in found)
    if operator == "$all":
        return all(all_part_holds(found, each) for each in argument)
    if operator == "$not":
        return not all(
            operator_holds(found, inner, value, argument) for inner, value in argument.items()
        )
    raise Unanswerable(f"operator {operator}")


def all_part_holds(found: list[Any], part: Any) -> bool:
    if operators_only(part) and list(part) == ["$elemMatch"]:
        return any(element_meets(value, part["$elemMatch"]) for value in found)
    return any(equal(value, part) for value in leaves(found))


def element_meets(value: Any, condition: Any) -> bool:
    """Some element of the array ``value`` meets ``condition`` (a query on the element's
    fields, or operators on the element itself)."""
    if not isinstance(value, list):
        return False
    if operators_only(condition):
        return any(
            all(operator_holds([element], op, arg, condition) for op, arg in condition.items())
            for element in value
        )
    return any(isinstance(element, Mapping) and matches(condition, element) for element in value)


def values_at(value: Any, parts: list[str]) -> list[Any]:
    """The values a dotted path reaches: through documents by name, into arrays (each
    element that is a document, and the element at a numeric place)."""
    if not parts:
        return [value]
    head, rest = parts[0], parts[1:]
    if isinstance(value, Mapping):
        return values_at(value[head], rest) if head in value else []
    if isinstance(value, list):
        found: list[Any] = []
        if head.isdigit() and int(head) < len(value):
            found += values_at(value[int(head)], rest)
        for element in value:
            if isinstance(element, Mapping):
                found += values_at(element, parts)
        return found
    return []


def leaves(found: list[Any]) -> list[Any]:
    """Each value, and each element of a value that is an array (an array field equals
    a value it holds)."""
    out: list[Any] = []
    for value in found:
        out.append(value)
        if isinstance(value, list):
            out += value
    return out


def kind(value: Any) -> str | None:
    """The comparison bracket of a value (None: one this module does not compare)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime):
        return "time"
    return None


def comparable(left: Any, right: Any) -> bool:
    return kind(left) is not None and kind(left) == kind(right)


def aligned(left: Any, right: Any) -> tuple[Any, Any]:
    """Times with and without a zone compared as UTC (the database keeps UTC)."""
    if isinstance(left, datetime) and isinstance(right, datetime):
        return as_utc(left), as_utc(right)
    return left, right


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def equal(left: Any, right: Any) -> bool:
    if comparable(left, right):
        first, second = aligned(left, right)
        return bool(first == second)
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, list | dict) and type(left) is type(right):
        return bool(left == right)
    return False


@lru_cache(maxsize=256)
def compiled(pattern: str, options: str) -> re.Pattern[str]:
    flags = re.IGNORECASE if "i" in options else 0
    if "m" in options:
        flags |= re.MULTILINE
    if "s" in options:
        flags |= re.DOTALL
    return re.compile(pattern, flags)
