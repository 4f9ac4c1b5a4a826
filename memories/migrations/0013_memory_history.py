"""Memory history: a version row for every state of a memory, written by triggers; erased with the memory.

- `tmws_record_first_versions()` (AFTER INSERT, once per statement, so a bulk insert or COPY costs one more
  statement) records version 1 of every new memory; `tmws_record_memory_version()` (AFTER UPDATE of a tracked
  column, per row) appends the new state with the next version number of that memory, the kind of change (`app.memory_change`, set by the services
  that restore or merge; otherwise create or update), who made it (the agent of the request's RLS context,
  `app.current_agent_id`, or the agent or operator a service noted, `app.change_agent_id` / `app.change_user_id`)
  and when. It runs as the
  table owner (SECURITY DEFINER), so an agent request records versions it may not write itself.
- `tmws_erase_memory_versions()` (AFTER DELETE, once per statement) deletes the deleted memories' versions.
- Agents read versions under row-level security with the read rule of `memories`, applied to the state the
  version records (a private past stays the owner's), through the memory's shares for shared versions.
- Existing memories get their current state as version 1.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


AGENT_ROLE = "tmws_agent"
TRACKED = ("content", "access_level", "namespace_id", "memory_category", "context_tags", "learning_weight")

FUNCTIONS = """
CREATE OR REPLACE FUNCTION tmws_record_first_versions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO memory_versions (memory_id, version, change, content, access_level, namespace_id, agent_id,
                                 context_tags, memory_category, learning_weight, changed_at,
                                 changed_by_agent_id, changed_by_user_id)
    SELECT created.id, 1, coalesce(nullif(current_setting('app.memory_change', true), ''), 'create'),
           created.content, created.access_level, created.namespace_id, created.agent_id, created.context_tags,
           created.memory_category, created.learning_weight, clock_timestamp(),
           coalesce(nullif(current_setting('app.change_agent_id', true), ''),
                    nullif(current_setting('app.current_agent_id', true), ''))::uuid,
           nullif(current_setting('app.change_user_id', true), '')::integer
      FROM created;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tmws_record_memory_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO memory_versions (memory_id, version, change, content, access_level, namespace_id, agent_id,
                                 context_tags, memory_category, learning_weight, changed_at,
                                 changed_by_agent_id, changed_by_user_id)
    SELECT NEW.id, coalesce(max(version), 0) + 1,
           coalesce(nullif(current_setting('app.memory_change', true), ''),
                    CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'update' END),
           NEW.content, NEW.access_level, NEW.namespace_id, NEW.agent_id, NEW.context_tags, NEW.memory_category,
           NEW.learning_weight, clock_timestamp(),
           coalesce(nullif(current_setting('app.change_agent_id', true), ''),
                    nullif(current_setting('app.current_agent_id', true), ''))::uuid,
           nullif(current_setting('app.change_user_id', true), '')::integer
      FROM memory_versions WHERE memory_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tmws_erase_memory_versions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM memory_versions version USING erased WHERE version.memory_id = erased.id;
    RETURN NULL;
END
$$;
"""

TRIGGERS = f"""
CREATE TRIGGER memories_version_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS created FOR EACH STATEMENT EXECUTE FUNCTION tmws_record_first_versions();
CREATE TRIGGER memories_version_update AFTER UPDATE ON memories
    FOR EACH ROW WHEN ({" OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in TRACKED)})
    EXECUTE FUNCTION tmws_record_memory_version();
CREATE TRIGGER memories_version_erase AFTER DELETE ON memories
    REFERENCING OLD TABLE AS erased FOR EACH STATEMENT EXECUTE FUNCTION tmws_erase_memory_versions();
"""

BACKFILL = """
INSERT INTO memory_versions (memory_id, version, change, content, access_level, namespace_id, agent_id, context_tags,
                             memory_category, learning_weight, changed_at)
SELECT id, 1, 'create', content, access_level, namespace_id, agent_id, context_tags, memory_category,
       learning_weight, updated_at
  FROM memories;
"""

# The read rule of memories_agent_select, on the state a version records (shares: the memory's).
POLICIES = f"""
ALTER TABLE memory_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_versions FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY memory_versions_service ON memory_versions TO %I USING (true) WITH CHECK (true)',
                   current_user);
END
$$;
CREATE POLICY memory_versions_agent_select ON memory_versions FOR SELECT TO {AGENT_ROLE} USING (
    access_level IN ('public', 'system')
    OR agent_id = tmws_current_agent()
    OR (access_level = 'shared' AND (
        namespace_id = ANY ((SELECT tmws_readable_namespace_ids(tmws_current_agent()))::uuid[])
        OR memory_id IN (
            SELECT share.content_object_id
              FROM memories_memoryuserobjectpermission share
              JOIN auth_permission permission ON permission.id = share.permission_id
              JOIN agents ON agents.user_id = share.user_id
             WHERE agents.id = tmws_current_agent() AND permission.codename = 'view_memory')))
);
GRANT SELECT ON memory_versions TO {AGENT_ROLE};
"""

REVERSE = f"""
REVOKE ALL ON memory_versions FROM {AGENT_ROLE};
DROP POLICY IF EXISTS memory_versions_agent_select ON memory_versions;
DROP POLICY IF EXISTS memory_versions_service ON memory_versions;
DROP TRIGGER IF EXISTS memories_version_erase ON memories;
DROP TRIGGER IF EXISTS memories_version_update ON memories;
DROP TRIGGER IF EXISTS memories_version_insert ON memories;
DROP FUNCTION IF EXISTS tmws_erase_memory_versions();
DROP FUNCTION IF EXISTS tmws_record_memory_version();
DROP FUNCTION IF EXISTS tmws_record_first_versions();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0002_initial'),
        ('memories', '0012_tagged_ids_from_the_tag_index'),
        ('namespaces', '0002_row_level_security'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='MemoryVersion',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('version', models.PositiveIntegerField()),
                ('change', models.CharField(choices=[('create', 'Created'), ('update', 'Changed'), ('restore', 'Restored'), ('merge', 'Merged')], max_length=16)),
                ('content', models.TextField()),
                ('access_level', models.CharField(choices=[('private', 'Private: the owner only'), ('shared', 'Shared: namespace members and named agents'), ('public', 'Public: every agent'), ('system', 'System: every agent; operators and admin agents write')], max_length=16)),
                ('context_tags', models.JSONField(default=list)),
                ('memory_category', models.CharField(max_length=64)),
                ('learning_weight', models.FloatField()),
                ('changed_at', models.DateTimeField()),
                ('agent', models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='agents.agent')),
                ('changed_by_agent', models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='agents.agent')),
                ('changed_by_user', models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('memory', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='versions', to='memories.memory')),
                ('namespace', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='namespaces.namespace')),
            ],
            options={
                'db_table': 'memory_versions',
                'ordering': ['memory', '-version'],
                'constraints': [models.UniqueConstraint(fields=('memory', 'version'), name='memory_versions_unique')],
            },
        ),
        migrations.RunSQL(FUNCTIONS + TRIGGERS + BACKFILL + POLICIES, REVERSE),
    ]
