"""One feedback vote per reader and memory (a new vote replaces the old).

Votes are written as the service (memories.services.record_feedback); the agent role only reads
and deletes them, as deleting a memory deletes its votes.
"""

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models

AGENT_ROLE = "tmws_agent"


class Migration(migrations.Migration):

    dependencies = [
        ('memories', '0009_keyword_statistics'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='MemoryFeedback',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('metadata', models.JSONField(blank=True, default=dict)),
                ('useful', models.BooleanField()),
                ('memory', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='feedback', to='memories.memory')),
                ('voter', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memory_feedback', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'db_table': 'memory_feedback',
                'constraints': [models.UniqueConstraint(fields=('memory', 'voter'), name='memory_feedback_one_vote')],
            },
        ),
        migrations.RunSQL(
            f"GRANT SELECT, DELETE ON memory_feedback TO {AGENT_ROLE};",
            f"REVOKE ALL ON memory_feedback FROM {AGENT_ROLE};",
        ),
    ]
