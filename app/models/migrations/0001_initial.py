from orjson import loads
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from app.core.ids import (
    attempt_id,
    delivery_id,
    event_id,
    form_id,
    form_integration_id,
    integration_id,
    membership_id,
    token_id,
    user_id,
    workspace_id,
)
from app.models.delivery import DeliveryStatus
from app.models.integration import IntegrationScope, IntegrationStatus
from app.models.workspace import Plan, Role


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.CharField(primary_key=True, default=user_id, unique=True, db_index=True, max_length=32)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('name', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'user_account', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiToken',
            fields=[
                ('id', fields.CharField(primary_key=True, default=token_id, unique=True, db_index=True, max_length=32)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='tokens', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(default='', max_length=200)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('hint', fields.CharField(max_length=16)),
                ('abilities', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'api_token', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Workspace',
            fields=[
                ('id', fields.CharField(primary_key=True, default=workspace_id, unique=True, db_index=True, max_length=32)),
                ('slug', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('plan', fields.CharEnumField(default=Plan.FREE, description='FREE: free\nSTARTER: starter\nPROFESSIONAL: professional', enum_type=Plan, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'workspace', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Form',
            fields=[
                ('id', fields.CharField(primary_key=True, default=form_id, unique=True, db_index=True, max_length=32)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='forms', on_delete=OnDelete.CASCADE)),
                ('slug', fields.CharField(max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'form', 'app': 'models', 'unique_together': (('workspace', 'slug'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Event',
            fields=[
                ('id', fields.CharField(primary_key=True, default=event_id, unique=True, db_index=True, max_length=32)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('form', fields.ForeignKeyField('models.Form', source_field='form_id', null=True, db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.SET_NULL)),
                ('type', fields.CharField(max_length=100)),
                ('payload', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('idempotency_key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'event', 'app': 'models', 'unique_together': (('workspace', 'idempotency_key'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Integration',
            fields=[
                ('id', fields.CharField(primary_key=True, default=integration_id, unique=True, db_index=True, max_length=32)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='integrations', on_delete=OnDelete.CASCADE)),
                ('type', fields.CharField(max_length=32)),
                ('name', fields.CharField(max_length=200)),
                ('config', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('secrets_encrypted', fields.TextField(null=True, unique=False)),
                ('events', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('scope', fields.CharEnumField(default=IntegrationScope.WORKSPACE, description='WORKSPACE: WORKSPACE\nFORMS: FORMS', enum_type=IntegrationScope, max_length=16)),
                ('enabled', fields.BooleanField(default=True)),
                ('status', fields.CharEnumField(default=IntegrationStatus.ACTIVE, description='ACTIVE: ACTIVE\nFAILING: FAILING\nDISABLED: DISABLED\nNEEDS_REAUTH: NEEDS_REAUTH', enum_type=IntegrationStatus, max_length=16)),
                ('last_success_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('failing_since', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'integration', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='FormIntegration',
            fields=[
                ('id', fields.CharField(primary_key=True, default=form_integration_id, unique=True, db_index=True, max_length=32)),
                ('form', fields.ForeignKeyField('models.Form', source_field='form_id', db_constraint=True, to_field='id', related_name='attachments', on_delete=OnDelete.CASCADE)),
                ('integration', fields.ForeignKeyField('models.Integration', source_field='integration_id', db_constraint=True, to_field='id', related_name='attachments', on_delete=OnDelete.CASCADE)),
                ('events', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('enabled', fields.BooleanField(default=True)),
                ('notify_on_failure', fields.BooleanField(default=False)),
                ('logic', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'form_integration', 'app': 'models', 'unique_together': (('form', 'integration'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Delivery',
            fields=[
                ('id', fields.CharField(primary_key=True, default=delivery_id, unique=True, db_index=True, max_length=32)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('event', fields.ForeignKeyField('models.Event', source_field='event_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('integration', fields.ForeignKeyField('models.Integration', source_field='integration_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('form', fields.ForeignKeyField('models.Form', source_field='form_id', null=True, db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.SET_NULL)),
                ('attachment', fields.ForeignKeyField('models.FormIntegration', source_field='attachment_id', null=True, db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.SET_NULL)),
                ('event_type', fields.CharField(max_length=100)),
                ('status', fields.CharEnumField(default=DeliveryStatus.PENDING, description='PENDING: PENDING\nSENDING: SENDING\nSUCCEEDED: SUCCEEDED\nRETRYING: RETRYING\nFAILED: FAILED\nHELD: HELD', enum_type=DeliveryStatus, max_length=16)),
                ('is_test', fields.BooleanField(default=False)),
                ('attempt_count', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('response_code', fields.IntField(null=True)),
                ('duration_ms', fields.IntField(null=True)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('request', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('response', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'delivery', 'app': 'models', 'indexes': [Index(fields=['status', 'next_attempt_at']), Index(fields=['workspace_id', 'created_at']), Index(fields=['integration_id', 'created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DeliveryAttempt',
            fields=[
                ('id', fields.CharField(primary_key=True, default=attempt_id, unique=True, db_index=True, max_length=32)),
                ('delivery', fields.ForeignKeyField('models.Delivery', source_field='delivery_id', db_constraint=True, to_field='id', related_name='attempts', on_delete=OnDelete.CASCADE)),
                ('number', fields.IntField()),
                ('trigger', fields.CharField(max_length=16)),
                ('request_url', fields.TextField(null=True, unique=False)),
                ('response_code', fields.IntField(null=True)),
                ('response_headers', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('response_body', fields.TextField(null=True, unique=False)),
                ('duration_ms', fields.IntField(null=True)),
                ('error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'delivery_attempt', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Membership',
            fields=[
                ('id', fields.CharField(primary_key=True, default=membership_id, unique=True, db_index=True, max_length=32)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.CASCADE)),
                ('role', fields.CharEnumField(default=Role.MEMBER, description='OWNER: owner\nADMIN: admin\nMEMBER: member', enum_type=Role, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'membership', 'app': 'models', 'unique_together': (('workspace', 'user'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
