"""How the schema's answers are completed: graphql-core's executor, with plain data read
straight off the objects the resolvers return.

graphql-core completes every selected field through the same machinery (a resolve info,
the resolver, then the completion of its value by type), about 2-3 µs a field. A page of
100 models with the client's selection is 13 000 fields, most of them attributes of the
objects the resolvers returned (a model's weight, its latency percentiles), and that
machinery cost four times the database read of the page.

``HubExecutionContext`` completes such a field the way that machinery would, without
it: a field with no resolver and no arguments (Strawberry's "basic" field, the attribute
of the same name) whose value is a scalar, an enum, a list of them, or an object whose
selected fields are all of that kind. For each object type and selection it writes out
one Python function, from the fields graphql-core collected (fragments spread,
``@skip``/``@include`` applied), that reads the attributes and builds the answer's dict;
the functions are kept for the requests that repeat the selection. Values go through
the serialisers graphql-core would call (the built-in scalars' answer for a value of
their own type, the value itself, written out inline), objects through their type's
``is_type_of``. Anything the plan does not expect (a null where the schema says
non-null, a value a serialiser refuses, a missing attribute) hands that field back to
graphql-core, which reports it as it always did: answers, errors and their paths are
graphql-core's own (``tests/test_execution.py`` holds the two side by side).
"""

from __future__ import annotations

import keyword
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple, cast

from graphql import (
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
    OperationDefinitionNode,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.cast import TYPE_CAST_ATTRIBUTE

DEFINITION = "strawberry-definition"  # where Strawberry keeps a field's definition
MIN_INT, MAX_INT = -(2**31), 2**31 - 1  # GraphQL's Int


class Unplanned(Exception):
    """A value the plan does not complete: graphql-core completes its field instead."""


Complete = Callable[[Any], Any]


class Code:
    """One generated function's source and the names it refers to: a value's completion
    is one expression in it, a nested object's a call of that object's function."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"Unplanned": Unplanned}
        self.locals = 0

    def refer(self, value: Any, hint: str) -> str:
        """A name in the generated code for ``value``."""
        name = f"{hint}_{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def local(self, hint: str) -> str:
        """A new local variable's name."""
        self.locals += 1
        return f"{hint}{self.locals}"

    def function(self, source: str, name: str) -> Complete:
        exec(compile(source, f"<plan {name}>", "exec"), self.namespace)
        function: Complete = self.namespace[name]
        return function


def leaf_fallback(leaf: GraphQLScalarType | GraphQLEnumType, required: bool) -> Complete:
    """A scalar or enum value as graphql-core's ``complete_leaf_value`` gives it, or null
    where the type allows it; remembers enum members' names in its ``names``."""
    coerce = leaf.coerce_output_value
    names: dict[int, Any] = {}

    def serialised(value: Any) -> Any:
        if value is None:
            if required:
                raise Unplanned
            return None
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise Unplanned
        if isinstance(value, Enum):  # by id: members live as long as their class
            names[id(value)] = coerced
        return coerced

    serialised.names = names  # type: ignore[attr-defined]
    return serialised


def leaf_expression(
    code: Code, leaf: GraphQLScalarType | GraphQLEnumType, required: bool, var: str
) -> str:
    """The completed value of ``var``: the built-in scalars return a value of their own
    type as it is (as graphql-core's serialisers do), an enum member its name once
    known; anything else goes through the type's serialiser."""
    fallback = leaf_fallback(leaf, required)
    call = f"{code.refer(fallback, 'serialised')}({var})"
    if leaf is GraphQLString or leaf is GraphQLID:
        return f"({var} if type({var}) is str else {call})"
    if leaf is GraphQLBoolean:
        return f"({var} if type({var}) is bool else {call})"
    if leaf is GraphQLInt:
        return f"({var} if type({var}) is int and {MIN_INT} <= {var} <= {MAX_INT} else {call})"
    if leaf is GraphQLFloat:  # x - x is 0.0 for a finite float, nan for inf and nan
        return f"({var} if type({var}) is float and {var} - {var} == 0.0 else {call})"
    if isinstance(leaf, GraphQLEnumType):
        names = code.refer(fallback.names, "names")  # type: ignore[attr-defined]
        return f"({names}.get(id({var})) or {call})"
    return call


def absent(required: bool) -> Complete:
    """A list's value that is not a list: null where the type allows it."""

    def complete(value: Any) -> Any:
        if value is None and not required:
            return None
        raise Unplanned

    return complete


class HubExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with each object's plain-data fields read by a plan."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # This request's plans by grouped field set (kept alive with it, so that its id
        # stays its own); whether its document has @skip or @include, once asked.
        self.plans: dict[int, tuple[GroupedFieldSet, Plan | None]] = {}
        self.conditional: bool | None = None

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        plan = self.plan(parent_type, grouped_field_set)
        if plan is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        if plan.whole is not None:
            try:
                return plan.whole(source_value)
            except Exception:
                pass
        results: dict[str, Any] = {}
        rest: GroupedFieldSet = {}
        for (response_name, field_details_list), step in zip(
            grouped_field_set.items(), plan.steps, strict=True
        ):
            if step is not None:
                try:
                    results[response_name] = step(source_value)
                    continue
                except Exception:
                    pass
            results[response_name] = None  # keeps the field's place in the answer
            rest[response_name] = field_details_list
        if not rest:
            return results
        completed = super().execute_fields(parent_type, source_value, path, rest, position_context)
        if not self.is_awaitable(completed):
            return merged(results, cast("dict[str, Any]", completed), rest)

        async def merge_later() -> dict[str, Any]:
            return merged(results, await cast("Awaitable[dict[str, Any]]", completed), rest)

        return merge_later()

    def plan(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> Plan | None:
        """The plan for an object's fields (None: it completes none of them): this
        request's, or the one made for the same selection before (``PLANS``)."""
        found = self.plans.get(id(grouped_field_set))
        if found is not None:
            return found[1]
        key = self.shared_key(parent_type, grouped_field_set)
        shared = PLANS.get(key) if key is not None else None
        if shared is not None:
            PLANS.move_to_end(key)
            plan = shared[1]
        else:
            plan = self.make_plan(parent_type, grouped_field_set)
            if key is not None:
                PLANS[key] = (grouped_field_set, plan)
                if len(PLANS) > MAX_SHARED_PLANS:
                    PLANS.popitem(last=False)
        self.plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan

    def shared_key(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> Hashable | None:
        """What a plan depends on, where that is the selection alone: the field nodes
        (by identity, as the prepared document is shared between requests), unless
        variables choose fields (@skip, @include) or fragments take arguments."""
        if self.conditional is None:
            self.conditional = not kept_text(self.operation) or operation_has_conditions(
                self.operation, self.fragment_definitions
            )
        if self.conditional:
            return None
        key: list[Any] = [parent_type]
        for response_name, field_details_list in grouped_field_set.items():
            key.append(response_name)
            for details in field_details_list:
                if details.fragment_variable_values is not None:
                    return None
                key.append(id(details.node))
        return tuple(key)

    def make_plan(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> Plan | None:
        reads = [
            self.read(parent_type, response_name, field_details_list)
            for response_name, field_details_list in grouped_field_set.items()
        ]
        return Plan.of(parent_type, reads) if any(reads) else None

    def read(
        self,
        parent_type: GraphQLObjectType,
        response_name: str,
        field_details_list: FieldDetailsList,
    ) -> Read | None:
        """How the plan reads and completes a field; None where graphql-core does."""
        node = field_details_list[0].node
        if any(details.node.directives for details in field_details_list):
            return None  # @stream and the like: graphql-core's
        name = node.name.value
        if name == "__typename":
            type_name = repr(parent_type.name)
            return Read(response_name, None, lambda code, var: type_name)
        field = parent_type.fields.get(name)
        if field is None or field.args or node.arguments or self.middleware_in_use():
            return None
        definition = field.extensions.get(DEFINITION)
        if (
            not getattr(field.resolve, "_is_default", False)
            or definition is None
            or definition.base_resolver is not None
        ):
            return None
        completion = self.completion(field.type, field_details_list)
        if completion is None:
            return None
        return Read(
            response_name, (definition.default_resolver, definition.python_name), completion
        )

    def middleware_in_use(self) -> bool:
        manager = self.middleware_manager
        return manager is not None and bool(getattr(manager, "_middleware_resolvers", None))

    def completion(
        self, output: GraphQLOutputType, field_details_list: FieldDetailsList
    ) -> Completion | None:
        """How the plan completes a value of ``output`` (None: it does not): the
        expression for it, given the code it goes into and the variable holding it."""
        required = isinstance(output, GraphQLNonNull)
        inner = output.of_type if isinstance(output, GraphQLNonNull) else output
        if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
            leaf = inner
            return lambda code, var: leaf_expression(code, leaf, required, var)
        if isinstance(inner, GraphQLList):
            item = self.completion(inner.of_type, field_details_list)
            if item is None:
                return None
            complete_item = item

            def list_expression(code: Code, var: str) -> str:
                item_var = code.local("item")
                otherwise = code.refer(absent(required), "absent")
                return (
                    f"([{complete_item(code, item_var)} for {item_var} in {var}] "
                    f"if type({var}) is list else {otherwise}({var}))"
                )

            return list_expression
        if isinstance(inner, GraphQLObjectType):
            collected = self.collect_subfields(inner, field_details_list)
            if collected.new_defer_usages:
                return None
            plan = self.plan(inner, collected.grouped_field_set)
            if plan is None or plan.whole is None:
                return None
            complete = plan.nested(inner, required)
            return lambda code, var: f"{code.refer(complete, 'object')}({var})"
        return None  # interfaces and unions: graphql-core resolves their type


# Plans made for a selection, kept for the requests that repeat it (a client sends the
# same few operations over and over), the least recently used dropped first.
PLANS: OrderedDict[Hashable, tuple[GroupedFieldSet, Plan | None]] = OrderedDict()
MAX_SHARED_PLANS = 1024

Completion = Callable[["Code", str], str]


class Read(NamedTuple):
    """A field the plan completes: read with ``get`` (a default resolver and the
    attribute it reads; None: ``complete`` is a constant), then completed."""

    response_name: str
    get: tuple[Callable[[Any, str], Any], str] | None
    complete: Completion

    def source(self, code: Code) -> str:
        if self.get is None:
            return ""
        reader, attribute = self.get
        if reader is getattr and attribute.isidentifier() and not keyword.iskeyword(attribute):
            return f"source.{attribute}"
        if reader is getattr:
            return f"getattr(source, {attribute!r})"
        return f"{code.refer(reader, 'resolver')}(source, {attribute!r})"


@dataclass(frozen=True)
class Plan:
    """An object's fields: a step each that the plan completes (None: graphql-core
    does), and the whole object's answer where the plan completes every field."""

    reads: list[Read | None]
    steps: list[Complete | None]
    whole: Complete | None
    as_field: dict[bool, Complete] = field(default_factory=dict)

    @classmethod
    def of(cls, parent_type: GraphQLObjectType, reads: list[Read | None]) -> Plan:
        steps: list[Complete | None] = [
            None if read is None else compiled(f"step_{parent_type.name}", [read], single=True)
            for read in reads
        ]
        whole = None
        if all(read is not None for read in reads):
            whole = compiled(f"complete_{parent_type.name}", reads)  # type: ignore[arg-type]
        return cls(reads, steps, whole)

    def nested(self, object_type: GraphQLObjectType, required: bool) -> Complete:
        """The whole object's answer as the value of a field: null where the field's
        type allows it, and the object's type checked (``is_type_of``) first."""
        found = self.as_field.get(required)
        if found is None:
            name = f"complete_{object_type.name}_field"
            found = compiled(name, self.reads, checked=(object_type, required))  # type: ignore[arg-type]
            self.as_field[required] = found
        return found


def compiled(
    name: str,
    reads: list[Read],
    single: bool = False,
    checked: tuple[GraphQLObjectType, bool] | None = None,
) -> Complete:
    """A function of a source object: each field read into a local, then one dict of
    the completed values (``single``: the one value alone). ``checked``: the source is
    the value of a field of that object type, required or not."""
    code = Code()
    lines = [f"def {name}(source):"]
    if checked is not None:
        object_type, required = checked
        lines += [
            "    if source is None:",
            "        raise Unplanned" if required else "        return None",
        ]
        if object_type.is_type_of is not None:
            check = type_check(object_type)
            lines += [
                f"    if type(source) not in {code.refer(check.accepted, 'accepted')} "
                f"or {TYPE_CAST_ATTRIBUTE!r} in source.__dict__:",
                f"        {code.refer(check, 'check')}(source)",
            ]
    values = []
    for read in reads:
        var = code.local("value")
        if read.get is not None:
            lines.append(f"    {var} = {read.source(code)}")
        values.append((read.response_name, read.complete(code, var)))
    if single:
        lines.append(f"    return {values[0][1]}")
    else:
        lines.append("    return {" + ", ".join(f"{key!r}: {value}" for key, value in values) + "}")
    return code.function("\n".join(lines) + "\n", name)


class TypeCheck:
    """An object type's ``is_type_of`` on a value (Unplanned where it says no). Its
    answer for an instance without a cast of its own depends on the class alone (so
    Strawberry's say), so ``accepted`` keeps the classes it accepted."""

    def __init__(self, is_type_of: Callable[[Any, Any], Any]) -> None:
        self.is_type_of = is_type_of
        self.accepted: set[type] = set()

    def __call__(self, value: Any) -> None:
        if not self.is_type_of(value, None):
            raise Unplanned
        if TYPE_CAST_ATTRIBUTE not in getattr(value, "__dict__", ()):
            self.accepted.add(type(value))


TYPE_CHECKS: dict[GraphQLObjectType, TypeCheck] = {}


def type_check(object_type: GraphQLObjectType) -> TypeCheck:
    """The one check of each object type, so that the classes it accepted are known to
    every plan."""
    found = TYPE_CHECKS.get(object_type)
    if found is None:
        assert object_type.is_type_of is not None
        found = TYPE_CHECKS[object_type] = TypeCheck(object_type.is_type_of)
    return found


# Query texts longer than this are prepared for each request and never kept (``HubSchema``
# in api.py): nothing shared here keeps their nodes alive either, as a node's location
# holds the whole text.
MAX_CACHED_QUERY_CHARS = 16_384


def kept_text(operation: OperationDefinitionNode) -> bool:
    """Whether the operation's text is short enough for its nodes to be kept."""
    return operation.loc is None or len(operation.loc.source.body) <= MAX_CACHED_QUERY_CHARS


# Whether each operation has conditions, by the operation's node: the prepared document
# is shared by the requests that send the same text, and walking a client's operation
# with all its fragments took a quarter of a small request's time. The node is kept
# with the answer, so that its id stays its own.
CONDITIONS: OrderedDict[int, tuple[OperationDefinitionNode, bool]] = OrderedDict()


def operation_has_conditions(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> bool:
    """``has_conditions``, answered once for an operation that repeats."""
    found = CONDITIONS.get(id(operation))
    if found is not None and found[0] is operation:
        CONDITIONS.move_to_end(id(operation))
        return found[1]
    answer = has_conditions(operation, fragments)
    CONDITIONS[id(operation)] = (operation, answer)
    if len(CONDITIONS) > MAX_SHARED_PLANS:
        CONDITIONS.popitem(last=False)
    return answer


def has_conditions(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> bool:
    """Whether a directive in the operation or its fragments may choose fields."""
    seen: set[int] = set()
    pending: list[Any] = [operation, *fragments.values()]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if getattr(node, "directives", None) and not isinstance(node, OperationDefinitionNode):
            return True
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            pending.extend(selection_set.selections)
        arguments = getattr(node, "variable_definitions", None) or ()
        if isinstance(node, FragmentDefinitionNode) and arguments:
            return True
    return False


def merged(
    planned: dict[str, Any], completed: dict[str, Any], rest: GroupedFieldSet
) -> dict[str, Any]:
    """The plan's answers with graphql-core's for the rest, in the selection's order; a
    field graphql-core left out (one the schema does not have) stays out."""
    for response_name in rest:
        if response_name in completed:
            planned[response_name] = completed[response_name]
        else:
            del planned[response_name]
    return planned
