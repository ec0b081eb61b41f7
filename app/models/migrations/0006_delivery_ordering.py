"""Ordered delivery: each delivery's lane (`ordering_key`) and the one ahead it waits for (`blocked_by`)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_event_catalog')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Delivery',
            name='blocked_by',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name='Delivery',
            name='ordering_key',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddIndex(
            model_name='Delivery',
            index=Index(fields=['integration_id', 'ordering_key', 'status', 'id']),
        ),
    ]
