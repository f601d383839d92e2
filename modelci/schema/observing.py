"""Reports each operation's first root field, type, duration and outcome to the context's
observer (the server's metrics). A label is a root field the schema has, or ``unknown``
for any other name a client sends, so the labels stay few whatever clients send."""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import OperationDefinitionNode
from strawberry.types import ExecutionContext

from .permissions import root_fields, root_scopes


def observe(context: ExecutionContext) -> Iterator[None]:
    """An extension's ``on_operation`` body: times the operation around its ``yield``."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:  # refused before it ran (a missing scope, say): not ok
        report(context, time.perf_counter() - started, refused=True)
        raise
    report(context, time.perf_counter() - started)


def report(context: ExecutionContext, seconds: float, refused: bool = False) -> None:
    observer = getattr(context.context, "observer", None)
    if observer is None:
        return
    operation, kind = "unparsed", "unknown"
    document = context.graphql_document
    if document is not None:
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                kind = definition.operation.value
                fields = list(root_fields(definition.selection_set, {}))
                known = root_scopes(context.schema._schema)[definition.operation]
                operation = "none" if not fields else fields[0] if fields[0] in known else "unknown"
                break
    result = context.result
    failed = refused or bool(context.pre_execution_errors) or bool(result and result.errors)
    observer.observe(operation, kind, seconds, failed)
