"""Hit counters move from `memories` to the narrow `memory_usage` table (see MemoryUsage).

Existing counts are copied over (and back on reverse). Agents read a memory's counters only
where they can read the memory: row-level security on `memory_usage` defers to the policy on
`memories`. Agents may delete the counters of memories they may see (Django deletes them with
the memory); only the connection's own role, which the hit-recording job uses, writes them.
"""
import django.db.models.deletion
from django.db import migrations, models

AGENT_ROLE = "tmws_agent"
OWN_MEMORY = "(EXISTS (SELECT 1 FROM memories WHERE memories.id = memory_usage.memory_id))"

COPY_FORWARD = """
INSERT INTO memory_usage (memory_id, access_count, last_accessed_at)
SELECT id, access_count, last_accessed_at FROM memories
 WHERE access_count > 0 OR last_accessed_at IS NOT NULL;
"""
COPY_BACK = """
UPDATE memories SET access_count = usage.access_count, last_accessed_at = usage.last_accessed_at
  FROM memory_usage usage WHERE usage.memory_id = memories.id;
"""

POLICIES = f"""
ALTER TABLE memory_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_usage FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY memory_usage_service ON memory_usage TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;
CREATE POLICY memory_usage_agent_select ON memory_usage FOR SELECT TO {AGENT_ROLE} USING {OWN_MEMORY};
CREATE POLICY memory_usage_agent_delete ON memory_usage FOR DELETE TO {AGENT_ROLE} USING {OWN_MEMORY};
"""
DROP_POLICIES = """
DROP POLICY IF EXISTS memory_usage_agent_delete ON memory_usage;
DROP POLICY IF EXISTS memory_usage_agent_select ON memory_usage;
DROP POLICY IF EXISTS memory_usage_service ON memory_usage;
ALTER TABLE memory_usage NO FORCE ROW LEVEL SECURITY;
ALTER TABLE memory_usage DISABLE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("memories", "0003_search_under_rls"),
        ("namespaces", "0002_row_level_security"),
    ]

    operations = [
        migrations.CreateModel(
            name="MemoryUsage",
            fields=[
                ("memory", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name="usage", serialize=False, to="memories.memory")),
                ("access_count", models.PositiveIntegerField(default=0)),
                ("last_accessed_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name_plural": "memory usage",
                "db_table": "memory_usage",
            },
        ),
        migrations.RunSQL(COPY_FORWARD, COPY_BACK),
        migrations.RemoveField(
            model_name="memory",
            name="access_count",
        ),
        migrations.RemoveField(
            model_name="memory",
            name="last_accessed_at",
        ),
        migrations.RunSQL(POLICIES, DROP_POLICIES),
    ]
