"""Every part of the public GraphQL schema explains itself: each type, field, argument, input field,
enum value and scalar carries a description, so GraphiQL's docs pane and the exported SDL say what a
thing is, which errors it can answer and which token ability it needs.

Walks graphql-core's type map of the schema the server builds; only GraphQL's own introspection types
(`__Schema` and the like) and built-in scalars are left out."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    specified_scalar_types,
)

from app.config import Settings
from app.schema import build_schema

BUILT_IN_SCALARS = frozenset(specified_scalar_types)


def _blank(description: str | None) -> bool:
    return description is None or not description.strip()


def undescribed(schema: GraphQLSchema) -> list[str]:
    """The schema coordinates (`Type`, `Type.field`, `Type.field(arg:)`, `Enum.VALUE`) without a description."""
    missing: list[str] = []
    for name, gql_type in sorted(schema.type_map.items()):
        if name.startswith("__") or name in BUILT_IN_SCALARS:
            continue
        if _blank(gql_type.description):
            missing.append(name)
        if isinstance(gql_type, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in gql_type.fields.items():
                if _blank(field.description):
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in field.args.items():
                    if _blank(arg.description):
                        missing.append(f"{name}.{field_name}({arg_name}:)")
        elif isinstance(gql_type, GraphQLInputObjectType):
            for field_name, field in gql_type.fields.items():
                if _blank(field.description):
                    missing.append(f"{name}.{field_name}")
        elif isinstance(gql_type, GraphQLEnumType):
            for value_name, value in gql_type.values.items():
                if _blank(value.description):
                    missing.append(f"{name}.{value_name}")
    return missing


def test_every_part_of_the_schema_has_a_description():
    schema = build_schema(Settings())._schema
    missing = undescribed(schema)
    assert not missing, f"{len(missing)} schema elements have no description:\n" + "\n".join(missing)


def test_the_exported_schema_is_described_too():
    # Sorting for export rebuilds the graphql-core schema: the descriptions must survive it.
    schema = build_schema(Settings(), sorted_for_export=True)._schema
    assert undescribed(schema) == []


def test_the_walk_finds_what_is_missing():
    from graphql import build_schema as from_sdl

    schema = from_sdl('''
        """A thing."""
        type Query {
          """Described."""
          a(x: Int): String
          b: Color
        }
        enum Color { RED }
    ''')
    assert undescribed(schema) == ["Color", "Color.RED", "Query.a(x:)", "Query.b"]
