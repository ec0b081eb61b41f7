"""The delivery log's event filter gets an index that also serves a prefix (`invoice.*`).

`event_type LIKE 'invoice.%'` becomes an index range only where comparisons follow the bytes: a "C"
collation, or an index with a pattern operator class. Under any other collation (C.UTF-8 included, on
PostgreSQL 15) the (workspace_id, event_type, id) index could not narrow a prefix, and the page's capped
count read it from the start of the workspace's entries, 400,000 of them at 1M deliveries (45-60 ms).
On PostgreSQL the index is now built with `varchar_pattern_ops`, which serves prefixes and equality alike
whatever the collation; elsewhere it stays a plain index. Tortoise's models cannot describe an operator
class, so the index is made here, not declared on the model.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

NAME = "idx_delivery_event_prefix"


async def _create(apps, schema_editor) -> None:
    event_type = '"event_type" varchar_pattern_ops' if schema_editor.client.capabilities.dialect == "postgres" \
        else '"event_type"'
    await schema_editor._run_sql(f'CREATE INDEX "{NAME}" ON "delivery" ("workspace_id", {event_type}, "id")')


async def _drop(apps, schema_editor) -> None:
    await schema_editor._run_sql(f'DROP INDEX "{NAME}"')


class Migration(migrations.Migration):
    dependencies = [('models', '0009_delivery_no_workspace_created_index')]

    initial = False

    operations = [
        ops.RemoveIndex(model_name='Delivery', fields=['workspace_id', 'event_type', 'id']),
        ops.RunPython(_create, _drop),
    ]
