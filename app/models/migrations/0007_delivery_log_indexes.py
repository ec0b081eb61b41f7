"""The delivery log at any size: an index per filter that pages in id order (newest first), the foreign keys
that deletes and attempt look-ups follow, and events by age (the purge).

On a big existing log these take a while to build and hold back writes to the tables they index
meanwhile: run the migration in a quiet moment."""

from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0006_delivery_ordering')]

    initial = False

    operations = [
        ops.AddIndex(model_name='Delivery', index=Index(fields=['workspace_id', 'id'])),
        ops.AddIndex(model_name='Delivery', index=Index(fields=['workspace_id', 'integration_id', 'id'])),
        ops.AddIndex(model_name='Delivery', index=Index(fields=['workspace_id', 'form_id', 'id'])),
        ops.AddIndex(model_name='Delivery', index=Index(fields=['workspace_id', 'event_type', 'id'])),
        ops.AddIndex(model_name='Delivery', index=Index(fields=['workspace_id', 'status', 'id'])),
        ops.AddIndex(model_name='Delivery', index=Index(fields=['event_id'])),
        ops.AddIndex(model_name='DeliveryAttempt', index=Index(fields=['delivery_id', 'id'])),
        ops.AddIndex(model_name='Event', index=Index(fields=['created_at'])),
    ]
