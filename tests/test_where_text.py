"""The search text (`modelci ls --where`, ``get_models(where="...")``) read into the
domain's ``ModelWhere``, and the first token it cannot read named with its position; no
database, no hub. Also the MongoDB query a search becomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from modelci.core.domain import MAX_WHERE_CONDITIONS, ModelFilter, ModelWhere
from modelci.core.errors import BadUserInput
from modelci.core.where_text import WhereTextError, parse_where
from modelci.server.model_query import MAX_BRANCHES, literal_pattern, models_query, search_query


def read(text: str) -> dict[str, Any]:
    return parse_where(text).model_dump(exclude_none=True, mode="json")


def test_conditions_joined_by_and_sit_side_by_side() -> None:
    assert read("tags.team = vision and metrics.acc > 0.75 and architecture ^= ResNet") == {
        "architecture": {"prefix": "ResNet"},
        "tags": [{"name": "team", "equals": "vision", "exists": True}],
        "metrics": [{"name": "acc", "gt": 0.75}],
    }
    assert read("metrics.acc >= 0.5 AND metrics.val/loss < -1e-3 and params.lr = '0.1'") == {
        "metrics": [{"name": "acc", "gte": 0.5}, {"name": "val/loss", "lt": -0.001}],
        "params": [{"name": "lr", "equals": "0.1", "exists": True}],
    }
    # The same field twice: the second under and.
    assert read("version >= 2 and version < 5") == {
        "version": {"gte": 2},
        "and": [{"version": {"lt": 5}}],
    }


def test_or_not_and_parentheses() -> None:
    assert read("engine = onnx or engine = TorchScript and tags.x exists") == {
        "or": [
            {"engine": "ONNX"},
            {"engine": "TORCHSCRIPT", "tags": [{"name": "x", "exists": True}]},
        ]
    }
    assert read("(engine = onnx or engine = torchscript) and not tags.deprecated exists") == {
        "or": [{"engine": "ONNX"}, {"engine": "TORCHSCRIPT"}],
        "not": {"tags": [{"name": "deprecated", "exists": True}]},
    }
    assert read("tags.team != vision") == {
        "not": {"tags": [{"name": "team", "equals": "vision", "exists": True}]}
    }
    assert read("NOT (task = text_classification OR status = converted)") == {
        "not": {"or": [{"task": "Text_Classification"}, {"status": "CONVERTED"}]}
    }


def test_values_words_quoted_times_and_names() -> None:
    assert read("dataset *= \"image net\" and name = 'it\\'s'") == {
        "architecture": {"equals": "it's"},
        "dataset": {"contains": "image net"},
    }
    assert read('tags.note = "say \\"and\\""') == {
        "tags": [{"name": "note", "equals": 'say "and"', "exists": True}]
    }
    assert read('tags.stage.candidate = ""') == {
        "tags": [{"name": "stage.candidate", "equals": "", "exists": True}]
    }
    assert read("tags.team=vision") == read("tags.team == vision")
    when = parse_where("created > 2026-05-01 and created < 2026-05-02T12:30:00+02:00")
    assert when.created is not None and when.created.after == datetime(2026, 5, 1, tzinfo=UTC)
    assert when.and_ is not None and when.and_[0].created is not None
    assert when.and_[0].created.before == datetime(2026, 5, 2, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "position", "token", "expected"),
    [
        ("tags.team >> vision", 11, ">", "tags.team takes =, != or exists"),
        ("tags.team = vision and colour = red", 24, "colour", "a field (architecture"),
        ("architecture > 3", 14, ">", "architecture takes =, !=, ^= or *="),
        ("task = Painting", 8, "Painting", "one of Image_Classification"),
        ("metrics.acc > high", 15, "high", "a number"),
        ("metrics.acc > inf", 15, "inf", "a number"),
        ("version = 1.5", 11, "1.5", "a whole number"),
        ("created >= 2026-01-01", 9, ">=", "created takes > or <"),
        ("created > yesterday", 11, "yesterday", "a date or a time"),
        ("tags.team = ", 13, "", "a text"),
        ("tags.team = and", 13, "and", "quote 'and'"),
        ("tags.team = 'vision", 13, "'vision", "no closing quote"),
        ("tags.t eam = x", 8, "eam", "takes =, != or exists"),
        ("tags. = x", 1, "tags.", "a field"),
        ("tags.a$b = x", 1, "tags.a$b", "a name after 'tags.'"),
        ("(tags.a exists", 15, "", "and, or, or ')'"),
        ("tags.a exists)", 14, ")", "and, or, or the end"),
        ("tags.a exists or", 17, "", "a field"),
        ("", 1, "", "a condition"),
        ("architecture ^= " + "x" * 257, 17, "x" * 257, "at most 256 characters"),
        ("((((((((( tags.a exists )))))))))", 9, "(", "nest at most 8 deep"),
        ("tags.a exists; drop", 8, "exists;", "tags.a takes =, != or exists"),
    ],
)
def test_the_first_token_it_cannot_read_is_named(
    text: str, position: int, token: str, expected: str
) -> None:
    with pytest.raises(WhereTextError) as refused:
        parse_where(text)
    error = refused.value
    assert (error.position, error.token) == (position, token)
    assert error.extensions == {
        "code": "BAD_USER_INPUT",
        "field": "where",
        "position": position,
        "token": token,
    }
    assert f"at character {position}: " in error.message and expected in error.message
    assert error.message.endswith(" " * (position - 1) + "^")  # a caret under the token


def test_the_domains_bounds_hold_for_the_text() -> None:
    with pytest.raises(BadUserInput, match="nest at most 4 levels"):
        parse_where("not not not not not tags.a exists")
    many = " or ".join(f"tags.t{index} exists" for index in range(MAX_WHERE_CONDITIONS + 1))
    with pytest.raises(WhereTextError, match=f"at most {MAX_WHERE_CONDITIONS} conditions"):
        parse_where(many)
    with pytest.raises(BadUserInput, match="at most 4096 characters"):
        parse_where("tags.a exists and " * 300)
    with pytest.raises(ValidationError, match="is not before"):
        ModelWhere.model_validate({"created": {"after": "2026-02-01", "before": "2026-01-01"}})


# The query a search becomes


def test_text_reaches_the_database_only_as_itself() -> None:
    assert literal_pattern("ViT.b+16") == "ViT\\.b\\+16"
    assert literal_pattern("a(b)|[c]*^$\\ d?{2}") == "a\\(b\\)\\|\\[c\\]\\*\\^\\$\\\\\\ d\\?\\{2\\}"
    assert literal_pattern("résumé") == "résumé"  # letters beyond ASCII mean themselves
    query = search_query(parse_where("architecture ^= 'a.*' and dataset *= '(x'"))
    assert query == {
        "architecture": {"$regex": "^a\\.\\*", "$options": "i"},
        "dataset": {"$regex": "\\(x", "$options": "i"},
    }


def test_a_conjunction_is_plain_fields_and_arrays_gather() -> None:
    where = parse_where(
        "tags.team = vision and metrics.acc > 0.75 and metrics.top5 >= 0.9 and version = 3"
    )
    assert search_query(where) == {
        "version": 3,
        "tags": {"$elemMatch": {"name": "team", "value": "vision"}},
        "metric": {
            "$all": [
                {"$elemMatch": {"name": "acc", "value": {"$gt": 0.75}}},
                {"$elemMatch": {"name": "top5", "value": {"$gte": 0.9}}},
            ]
        },
    }
    assert search_query(parse_where("version >= 2 and version < 5")) == {
        "version": {"$gte": 2, "$lt": 5}
    }
    # The older arguments and the search, all at once.
    legacy = ModelFilter.model_validate({"architecture": "ResNet50", "where": where})
    assert models_query(legacy)["architecture"] == "ResNet50"


def sorted_items(branch: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((key, str(value)) for key, value in branch.items())


def test_or_is_spread_over_and_while_it_stays_small() -> None:
    text = "(engine = onnx or engine = trt) and (task = other or version = 2)"
    (branches,) = search_query(parse_where(text)).values()
    assert sorted(branches, key=sorted_items) == sorted(
        [
            {"engine": "ONNX", "task": "Other"},
            {"engine": "ONNX", "version": 2},
            {"engine": "TRT", "task": "Other"},
            {"engine": "TRT", "version": 2},
        ],
        key=sorted_items,
    )
    three = "(version = 1 or version = 2 or version = 3)"
    # Nine branches are more than MAX_BRANCHES: the second group stays nested.
    assert MAX_BRANCHES < 9
    assert search_query(parse_where(f"{three} and {three} and tags.a exists")) == {
        "$or": [{"tags": {"$elemMatch": {"name": "a"}}, "version": v} for v in (1, 2, 3)],
        "$and": [{"$or": [{"version": 1}, {"version": 2}, {"version": 3}]}],
    }
    assert search_query(parse_where("not tags.a exists and not tags.b = x")) == {
        "$nor": [
            {"tags": {"$elemMatch": {"name": "b", "value": "x"}}},
            {"tags": {"$elemMatch": {"name": "a"}}},
        ]
    }
    assert search_query(ModelWhere.model_validate({"tags": [{"name": "a", "exists": False}]})) == {
        "tags": {"$not": {"$elemMatch": {"name": "a"}}}
    }


def test_empty_operands_count_as_conditions() -> None:
    """Thousands of empty and/or/not operands, each no condition of its own, would make a
    full scan over every model test each of them: every operand counts as one at least."""
    empty_not = {"not": {}}
    with pytest.raises(ValidationError, match="at most"):
        ModelWhere.model_validate({"or": [empty_not] * 32, "and": [{"or": [empty_not] * 32}]})
    assert ModelWhere.model_validate({"or": [empty_not] * MAX_WHERE_CONDITIONS}).conditions() == (
        MAX_WHERE_CONDITIONS
    )
