"""Integration status NEEDS_SETUP: connected, but its configuration is not complete (a Google Sheets
integration whose spreadsheet is chosen after consent); its deliveries are held until it is."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from app.models.integration import IntegrationStatus


class Migration(migrations.Migration):
    dependencies = [('models', '0003_portal_sessions')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='Integration',
            name='status',
            field=fields.CharEnumField(default=IntegrationStatus.ACTIVE, description='ACTIVE: ACTIVE\nFAILING: FAILING\nDISABLED: DISABLED\nNEEDS_REAUTH: NEEDS_REAUTH\nNEEDS_SETUP: NEEDS_SETUP', enum_type=IntegrationStatus, max_length=16),
        ),
    ]
