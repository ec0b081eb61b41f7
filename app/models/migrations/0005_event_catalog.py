"""The event catalog: registered event types with a description, a JSON Schema and an example;
events keep where their payload broke a LENIENT type's schema."""

from orjson import loads
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise.migrations import operations as ops

from app.core.ids import event_type_id
from app.models.catalog import EventValidation


class Migration(migrations.Migration):
    dependencies = [('models', '0004_integration_needs_setup')]

    initial = False

    operations = [
        ops.CreateModel(
            name='EventType',
            fields=[
                ('id', fields.CharField(primary_key=True, default=event_type_id, unique=True, db_index=True, max_length=32)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', null=True, db_constraint=True, to_field='id', related_name='event_types', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(db_index=True, max_length=100)),
                ('description', fields.TextField(default='', unique=False)),
                ('json_schema', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('example', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('validation', fields.CharEnumField(default=EventValidation.LENIENT, description='STRICT: STRICT\nLENIENT: LENIENT', enum_type=EventValidation, max_length=16)),
                ('deprecated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('deprecation_reason', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'event_type', 'app': 'models', 'unique_together': (('workspace', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Event',
            name='schema_errors',
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
    ]
