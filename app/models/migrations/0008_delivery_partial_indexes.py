"""The sweeper's and the ordered lanes' indexes hold only the rows they look for: deliveries waiting
(PENDING, RETRYING) by when they are due, SENDING ones by when their lease runs out, and the deliveries of
ordered integrations by lane. A delivery that succeeds leaves all three, so its last write no longer adds
entries to them, and the log's millions of finished rows no longer weigh on them."""

from tortoise import migrations
from tortoise.migrations import operations as ops

from app.models.indexes import WhereIndex


class Migration(migrations.Migration):
    dependencies = [('models', '0007_delivery_log_indexes')]

    initial = False

    operations = [
        ops.RemoveIndex(model_name='Delivery', fields=['status', 'next_attempt_at']),
        ops.RemoveIndex(model_name='Delivery', fields=['integration_id', 'ordering_key', 'status', 'id']),
        ops.AddIndex(model_name='Delivery', index=WhereIndex(
            fields=['next_attempt_at'], name='idx_delivery_waiting', where='"status" IN (\'PENDING\', \'RETRYING\')')),
        ops.AddIndex(model_name='Delivery', index=WhereIndex(
            fields=['locked_until'], name='idx_delivery_sending', where='"status" = \'SENDING\'')),
        ops.AddIndex(model_name='Delivery', index=WhereIndex(
            fields=['integration_id', 'ordering_key', 'status', 'id'], name='idx_delivery_lanes',
            where='"ordering_key" IS NOT NULL')),
    ]
