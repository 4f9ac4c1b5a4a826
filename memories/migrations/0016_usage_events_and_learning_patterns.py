"""Usage events (memory_usage_events) and the learned patterns per agent (learning_patterns).

Neither table is granted to the agent role: events are written by the hit flush, patterns by the job, and
both are read by services after `access` allowed it. A pattern's topic labels are words of the agent's
memories, so deleting memories clears their owners' topics until the next run (a statement trigger that
runs as the table owner, so an agent deleting its own memory needs no grant on the table).
"""

import django.contrib.postgres.fields
import django.db.models.deletion
from django.db import migrations, models

FORGET_TOPICS = """
CREATE FUNCTION tmws_forget_topics() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE learning_patterns SET topics = '[]'::jsonb
     WHERE agent_id IN (SELECT DISTINCT agent_id FROM gone WHERE agent_id IS NOT NULL)
       AND topics <> '[]'::jsonb;
    RETURN NULL;
END $$;
CREATE TRIGGER memories_forget_topics AFTER DELETE ON memories
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION tmws_forget_topics();
"""
REMEMBER_NOTHING = """
DROP TRIGGER IF EXISTS memories_forget_topics ON memories;
DROP FUNCTION IF EXISTS tmws_forget_topics();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0002_initial'),
        ('memories', '0015_consolidation_and_decay'),
    ]

    operations = [
        migrations.CreateModel(
            name='LearningPattern',
            fields=[
                ('agent', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='agents.agent')),
                ('computed_at', models.DateTimeField()),
                ('window_start', models.DateTimeField()),
                ('window_end', models.DateTimeField()),
                ('events', models.PositiveIntegerField(default=0)),
                ('memories', models.PositiveIntegerField(default=0)),
                ('topics', models.JSONField(blank=True, default=list)),
                ('co_access', models.JSONField(blank=True, default=list)),
                ('search_categories', models.JSONField(blank=True, default=dict)),
                ('active_hours', models.JSONField(blank=True, default=list)),
                ('stale', models.JSONField(blank=True, default=dict)),
                ('returned', models.JSONField(blank=True, default=list)),
                ('returned_unused', models.JSONField(blank=True, default=list)),
                ('missed_by_members', models.JSONField(blank=True, default=list)),
            ],
            options={
                'db_table': 'learning_patterns',
                'ordering': ['agent'],
            },
        ),
        migrations.CreateModel(
            name='UsageEvent',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('kind', models.CharField(choices=[('search', 'Search'), ('read', 'Read'), ('feedback', 'Feedback'), ('task', 'Used in a task')], max_length=16)),
                ('at', models.DateTimeField()),
                ('mode', models.CharField(blank=True, default='', max_length=16)),
                ('duration_ms', models.FloatField(blank=True, null=True)),
                ('result_count', models.PositiveSmallIntegerField(default=0)),
                ('memory_ids', django.contrib.postgres.fields.ArrayField(base_field=models.UUIDField(), blank=True, default=list, size=None)),
                ('useful', models.BooleanField(blank=True, null=True)),
                ('query', models.TextField(blank=True, default='')),
                ('agent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='agents.agent')),
            ],
            options={
                'db_table': 'memory_usage_events',
                'ordering': ['-at'],
                'indexes': [models.Index(fields=['kind', 'at'], name='usage_events_kind_time_idx'), models.Index(fields=['agent', 'at'], name='usage_events_agent_time_idx')],
                'constraints': [models.CheckConstraint(condition=models.Q(('kind__in', ['search', 'read', 'feedback', 'task'])), name='usage_events_kind_valid')],
            },
        ),
        migrations.RunSQL(FORGET_TOPICS, REMEMBER_NOTHING),
    ]
