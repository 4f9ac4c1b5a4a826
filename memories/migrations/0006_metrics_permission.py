"""The permission that lets an operator read GET /metrics (superusers hold it implicitly)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('memories', '0005_rls_planned_cheaply'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='memory',
            options={'ordering': ['-created_at'], 'permissions': [('view_metrics', 'Can read the deployment-wide metrics')], 'verbose_name_plural': 'memories'},
        ),
    ]
