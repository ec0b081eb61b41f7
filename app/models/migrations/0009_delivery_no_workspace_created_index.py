"""The (workspace_id, created_at) index on deliveries goes: nothing reads by it any more (the log's date
range goes by the time-sortable id on (workspace_id, id), the purge and the exports by created_at alone),
and every delivery written, claimed and recorded updated it: one index fewer per write."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0008_delivery_partial_indexes')]

    initial = False

    operations = [
        ops.RemoveIndex(model_name='Delivery', fields=['workspace_id', 'created_at']),
    ]
