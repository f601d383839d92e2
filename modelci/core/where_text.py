"""A search over models written as a short text (``modelci ls --where``, and
``ModelHub.get_models(where="...")``), read into the domain's ``ModelWhere``.

    tags.team = vision and metrics.acc > 0.75 and architecture ^= ResNet
    (engine = ONNX or engine = TORCHSCRIPT) and not tags.deprecated exists

Grammar (keywords and field names in any case)::

    search     := any_of
    any_of     := all_of ("or" all_of)*
    all_of     := unary ("and" unary)*
    unary      := "not" unary | "(" any_of ")" | condition
    condition  := field operator value | field "exists"
    operator   := "=" | "!=" | ">" | ">=" | "<" | "<=" | "^=" (starts with) | "*=" (contains)
    value      := a word (no spaces, quotes, parentheses or operator characters)
                | "quoted text" | 'quoted text' (a backslash escapes the quote or itself)

Fields and what they take:

    architecture (or name), dataset   = != ^= *=  (^= and *= ignore case, text literal)
    task, framework, engine, status   = !=        (a value of the enum, any case)
    version                           = != > >= < <=  (a whole number)
    metrics.NAME (or metric.NAME)     = != > >= < <=  (a number), exists
    tags.NAME, params.NAME            = !=  (text), exists
    created                           > <  (2026-05-01, 2026-05-01T12:00, …Z; UTC if no zone)

``and`` binds tighter than ``or``; ``a != b`` is ``not a = b`` (a model without a tag
``team`` has ``tags.team != vision``). The first token that cannot be read is named, with
its position (1-based), in a ``WhereTextError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import ValidationError

from .domain import (
    MAX_WHERE_CONDITIONS,
    MAX_WHERE_DEPTH,
    METADATA_NAME,
    METADATA_NAME_RULE,
    Engine,
    Framework,
    ModelStatus,
    ModelWhere,
    Task,
)
from .errors import BadUserInput, invalid_input

MAX_TEXT = 4096  # characters of a search
MAX_NESTING = 2 * MAX_WHERE_DEPTH  # how deep "not" and parentheses may nest

TEXT_OPERATORS = ("=", "!=", "^=", "*=")
EQUALITY = ("=", "!=")
ORDER = ("=", "!=", ">", ">=", "<", "<=")
BOUND_NAMES = {"=": "eq", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
ENUM_FIELDS: dict[str, type[Enum]] = {
    "task": Task,
    "framework": Framework,
    "engine": Engine,
    "status": ModelStatus,
}
FIELDS = (
    "architecture, name, dataset, task, framework, engine, status, version, created, "
    "metrics.NAME, tags.NAME, params.NAME"
)

TOKEN = re.compile(
    r"""\s*(?:
        (?P<operator>>=|<=|!=|\^=|\*=|==|=|>|<)
      | (?P<parenthesis>[()])
      | (?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<word>[^\s()=!<>^*"']+)
      | (?P<other>\S)
    )""",
    re.VERBOSE | re.DOTALL,
)


class WhereTextError(BadUserInput):
    """A search text that cannot be read: the first token that cannot, its position."""

    def __init__(self, text: str, token: Token, expected: str) -> None:
        shown = "the end" if token.kind == "end" else repr(token.text)
        caret = " " * (token.position - 1) + "^"
        super().__init__(
            f"where: cannot read {shown} at character {token.position}: {expected}\n"
            f"  {text}\n  {caret}",
            field="where",
            position=token.position,
            token=token.text,
        )
        self.position = token.position
        self.token = token.text


@dataclass(frozen=True)
class Token:
    kind: str  # operator, parenthesis, quoted, word, other, end
    text: str  # as written (a quoted value with its quotes)
    position: int  # 1-based

    @property
    def value(self) -> str:
        """A word as written, a quoted value without its quotes and escapes."""
        if self.kind != "quoted":
            return self.text
        return re.sub(r"\\(.)", r"\1", self.text[1:-1], flags=re.DOTALL)

    def keyword(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def tokens(text: str) -> list[Token]:
    found: list[Token] = []
    position = 0
    while True:
        match = TOKEN.match(text, position)
        if match is None or match.lastgroup is None:  # only spaces left
            found.append(Token("end", "", len(text) + 1))
            return found
        kind = match.lastgroup
        start = match.start(kind)
        if kind == "other" and text[start] in "\"'":
            token = Token("other", text[start:], start + 1)
            raise WhereTextError(text, token, "a quoted value with no closing quote")
        operator = "=" if match.group(kind) == "==" else match.group(kind)
        found.append(Token(kind, operator, start + 1))
        position = match.end()


def parse_where(text: str) -> ModelWhere:
    """The search a text writes, or ``WhereTextError`` at the first token it cannot read
    (BAD_USER_INPUT, as every check of the domain's bounds)."""
    if len(text) > MAX_TEXT:
        raise BadUserInput(f"where: at most {MAX_TEXT} characters (got {len(text)})")
    reader = Reader(text, tokens(text))
    if reader.peek().kind == "end":
        raise WhereTextError(text, reader.peek(), "a condition, e.g. tags.team = vision")
    try:
        where = reader.any_of(0)
    except ValidationError as error:  # past the domain's bounds (how deep, how many)
        raise invalid_input(error, "where") from None
    if reader.peek().kind != "end":
        raise WhereTextError(text, reader.peek(), "and, or, or the end of the search")
    return where


class Reader:
    def __init__(self, text: str, found: list[Token]) -> None:
        self.text = text
        self.tokens = found
        self.at = 0
        self.conditions = 0

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, token: Token, expected: str) -> WhereTextError:
        return WhereTextError(self.text, token, expected)

    def any_of(self, depth: int) -> ModelWhere:
        parts = [self.all_of(depth)]
        while self.peek().keyword("or"):
            self.take()
            parts.append(self.all_of(depth))
        return parts[0] if len(parts) == 1 else ModelWhere(or_=parts)

    def all_of(self, depth: int) -> ModelWhere:
        parts = [self.unary(depth)]
        while self.peek().keyword("and"):
            self.take()
            parts.append(self.unary(depth))
        return all_of(parts)

    def unary(self, depth: int) -> ModelWhere:
        token = self.peek()
        opens = token.keyword("not") or (token.kind == "parenthesis" and token.text == "(")
        if opens and depth >= MAX_NESTING:
            raise self.fail(token, f"'not' and '(' nest at most {MAX_NESTING} deep")
        if token.keyword("not"):
            self.take()
            return ModelWhere(not_=self.unary(depth + 1))
        if opens:
            self.take()
            inner = self.any_of(depth + 1)
            closing = self.take()
            if closing.text != ")":
                raise self.fail(closing, "and, or, or ')'")
            return inner
        return self.condition()

    def condition(self) -> ModelWhere:
        field = self.take()
        if field.kind != "word" or field.keyword("and", "or", "exists"):
            raise self.fail(field, f"a field ({FIELDS}), 'not' or '('")
        self.conditions += 1
        if self.conditions > MAX_WHERE_CONDITIONS:
            raise self.fail(field, f"at most {MAX_WHERE_CONDITIONS} conditions")
        name = field.text.lower()
        kind, _, key = field.text.partition(".")
        kind = kind.lower()
        if kind in ("tags", "tag", "params", "param", "metrics", "metric") and key:
            if not METADATA_NAME.fullmatch(key):
                raise self.fail(field, f"a name after '{kind}.' of {METADATA_NAME_RULE}")
            if kind.startswith("metric"):
                return self.metric(key)
            return self.name_value("tags" if kind.startswith("tag") else "params", key)
        if name in ("architecture", "name", "dataset"):
            return self.text_match("dataset" if name == "dataset" else "architecture")
        if name in ENUM_FIELDS:
            return self.enum_match(name, ENUM_FIELDS[name])
        if name == "version":
            operator = self.operator(ORDER, "version")
            value = self.value(whole_number, "a whole number")
            return negated(operator, ModelWhere(version={BOUND_NAMES[operator.lstrip("!")]: value}))
        if name == "created":
            operator = self.operator((">", "<"), "created")
            time = self.value(a_time, "a date or a time (2026-05-01, 2026-05-01T12:00:00Z)")
            return ModelWhere(created={"after" if operator == ">" else "before": time})
        raise self.fail(field, f"a field ({FIELDS}), 'not' or '('")

    def operator(self, allowed: tuple[str, ...], field: str, exists: bool = False) -> str:
        token = self.take()
        if exists and token.keyword("exists"):
            return "exists"
        if token.kind != "operator" or token.text not in allowed:
            choices = [*allowed, "exists"] if exists else list(allowed)
            raise self.fail(token, f"{field} takes {', '.join(choices[:-1])} or {choices[-1]}")
        return token.text

    def value(self, read: Callable[[str], Any], expected: str) -> Any:
        token = self.take()
        if token.kind not in ("word", "quoted") or token.keyword("and", "or"):
            if token.kind == "word":
                expected += f"; quote {token.text!r} to match the word itself"
            raise self.fail(token, expected)
        try:
            return read(token.value)
        except ValueError:
            raise self.fail(token, expected) from None

    def checked(self, token: Token, build: Callable[[], ModelWhere]) -> ModelWhere:
        """A condition built from ``token``'s value, or an error at it."""
        try:
            return build()
        except ValidationError as error:
            problem = "; ".join(str(item["msg"]) for item in error.errors(include_url=False))
            raise self.fail(token, problem) from None

    def text_match(self, field: str) -> ModelWhere:
        operator = self.operator(TEXT_OPERATORS, field)
        token = self.peek()
        text = self.value(str, "a text (quote it if it has spaces)")
        part = {"=": "equals", "!=": "equals", "^=": "prefix", "*=": "contains"}[operator]
        return negated(operator, self.checked(token, lambda: ModelWhere(**{field: {part: text}})))

    def enum_match(self, field: str, kind: type[Enum]) -> ModelWhere:
        operator = self.operator(EQUALITY, field)
        member = self.value(member_of(kind), f"one of {', '.join(member.name for member in kind)}")
        return negated(operator, ModelWhere(**{field: member}))

    def metric(self, name: str) -> ModelWhere:
        operator = self.operator(ORDER, f"metrics.{name}", exists=True)
        if operator == "exists":
            return ModelWhere(metrics=[{"name": name}])
        value = self.value(finite_number, "a number")
        bound = BOUND_NAMES[operator.lstrip("!")]
        return negated(operator, ModelWhere(metrics=[{"name": name, bound: value}]))

    def name_value(self, field: str, name: str) -> ModelWhere:
        operator = self.operator(EQUALITY, f"{field}.{name}", exists=True)
        if operator == "exists":
            return ModelWhere(**{field: [{"name": name}]})
        token = self.peek()
        text = self.value(str, 'a text (quote it if it has spaces; "" for an empty one)')
        condition = {field: [{"name": name, "equals": text}]}
        return negated(operator, self.checked(token, lambda: ModelWhere(**condition)))


def negated(operator: str, where: ModelWhere) -> ModelWhere:
    return ModelWhere(not_=where) if operator == "!=" else where


def member_of(kind: type[Enum]) -> Callable[[str], Enum]:
    """Reads a member of ``kind`` by name, in any case."""
    names = {member.name.lower(): member for member in kind}

    def read(text: str) -> Enum:
        try:
            return names[text.lower()]
        except KeyError:
            raise ValueError(text) from None

    return read


def whole_number(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d{1,18}", text):
        raise ValueError
    return int(text)


def finite_number(text: str) -> float:
    number = float(text)  # ValueError for anything else
    if not math.isfinite(number):
        raise ValueError
    return number


def a_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


# Conditions together

SINGLE_FIELDS = (
    "architecture",
    "dataset",
    "task",
    "framework",
    "engine",
    "status",
    "version",
    "created",
    "profile",
    "or_",
    "not_",
)
LIST_FIELDS = ("tags", "metrics", "params", "and_")


def all_of(parts: list[ModelWhere]) -> ModelWhere:
    """One search in which every part holds, as flat as can be: parts on different
    fields side by side, tags, metrics and params gathered, anything given twice under
    ``and``."""
    if len(parts) == 1:
        return parts[0]
    fields: dict[str, Any] = {}
    nested: list[ModelWhere] = []
    for part in parts:
        clash = any(getattr(part, name) is not None and name in fields for name in SINGLE_FIELDS)
        if clash:
            nested.append(part)
            continue
        for name in SINGLE_FIELDS:
            if getattr(part, name) is not None:
                fields[name] = getattr(part, name)
        for name in LIST_FIELDS:
            if getattr(part, name) is not None:
                fields[name] = [*fields.get(name, []), *getattr(part, name)]
    if nested:
        fields["and_"] = [*fields.get("and_", []), *nested]
    return ModelWhere(**fields)
