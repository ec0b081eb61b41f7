"""Portal sessions: short-lived `hyp_` browser credentials for one workspace."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.core.ids import portal_session_id
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_chat_webhook_urls_in_secrets')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PortalSession',
            fields=[
                ('id', fields.CharField(primary_key=True, default=portal_session_id, unique=True, db_index=True, max_length=32)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='portal_sessions', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='portal_sessions', on_delete=OnDelete.CASCADE)),
                ('created_by', fields.ForeignKeyField('models.ApiToken', source_field='created_by_id', db_constraint=True, to_field='id', related_name='portal_sessions', on_delete=OnDelete.CASCADE)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('hint', fields.CharField(max_length=16)),
                ('abilities', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('allowed_origins', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('form_slugs', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('theme', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'portal_session', 'app': 'models', 'pk_attr': 'id', 'table_description': "A short-lived browser credential (`hyp_...`) for one workspace, made by an API token's holder"},
            bases=['Model'],
        ),
    ]
