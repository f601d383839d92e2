"""schema.graphql is what clients generate code from: it must match the live schema."""

from pathlib import Path

from modelci.schema import schema

SCHEMA_FILE = Path(__file__).parent.parent / "schema.graphql"


def test_schema_graphql_matches_the_live_schema() -> None:
    assert SCHEMA_FILE.read_text() == schema.as_str() + "\n", (
        "schema.graphql is stale: run `modelci export-schema`"
    )
