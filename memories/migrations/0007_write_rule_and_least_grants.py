"""Row-level security covers writes with the write rule, the agent role keeps only what agent requests use,
and the database, not Django, clears a deleted memory's children's parent link.

Write rule (access.can, repeated in SQL): a system memory is written by admin agents
only; any other memory by its owner, and a shared one also by admins of its namespace. UPDATE and
DELETE test it on the old row (USING) and UPDATE on the new row too (WITH CHECK); INSERT lets an
agent store only as itself into namespaces it is a member of, and system memories only admin agents.

Grants: migration namespaces/0002 gave the agent role every table. It now holds, per table, the
privileges agent requests exercise (core/db.py's agent context: the REST and v1 views, MCP
tools and workflow runs) and nothing on credentials, sessions, the admin log or the import
records. Tables created later get no grant by default: a migration adding a table that agent
requests touch grants it explicitly (docs/access-control.md).

Parent links: `parent_memory` was SET_NULL in Django, which issues the UPDATE itself, as the agent
and so under RLS: a child the deleting agent cannot see kept its link and the delete failed on the
foreign key. ON DELETE SET NULL runs as the table's owner, outside RLS, for every child.
"""
from django.db import migrations, models

AGENT_ROLE = "tmws_agent"

FUNCTIONS = """
CREATE OR REPLACE FUNCTION tmws_member_namespace_ids(writer uuid) RETURNS uuid[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN ARRAY(
        SELECT agents.namespace_id FROM agents WHERE agents.id = writer
        UNION
        SELECT grant_.content_object_id
          FROM namespaces_namespaceuserobjectpermission grant_
          JOIN auth_permission permission ON permission.id = grant_.permission_id
          JOIN agents ON agents.user_id = grant_.user_id
         WHERE agents.id = writer AND permission.codename IN ('member_namespace', 'admin_namespace'));
END
$$;

CREATE OR REPLACE FUNCTION tmws_admin_namespace_ids(writer uuid) RETURNS uuid[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN ARRAY(
        SELECT grant_.content_object_id
          FROM namespaces_namespaceuserobjectpermission grant_
          JOIN auth_permission permission ON permission.id = grant_.permission_id
          JOIN agents ON agents.user_id = grant_.user_id
         WHERE agents.id = writer AND permission.codename = 'admin_namespace');
END
$$;

CREATE OR REPLACE FUNCTION tmws_is_admin_agent(writer uuid) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM agents WHERE agents.id = writer AND agents.access_level = 'admin');
END
$$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS tmws_is_admin_agent(uuid);
DROP FUNCTION IF EXISTS tmws_admin_namespace_ids(uuid);
DROP FUNCTION IF EXISTS tmws_member_namespace_ids(uuid);
"""

IS_ADMIN = "(SELECT tmws_is_admin_agent(tmws_current_agent()))"
WRITABLE = f"""(CASE WHEN access_level = 'system' THEN {IS_ADMIN}
     ELSE agent_id = tmws_current_agent()
          OR (access_level = 'shared'
              AND namespace_id = ANY ((SELECT tmws_admin_namespace_ids(tmws_current_agent()))::uuid[]))
END)"""
INSERTABLE = f"""(CASE WHEN access_level = 'system'
          THEN {IS_ADMIN} AND (agent_id IS NULL OR agent_id = tmws_current_agent())
     ELSE agent_id = tmws_current_agent()
          AND namespace_id = ANY ((SELECT tmws_member_namespace_ids(tmws_current_agent()))::uuid[])
END)"""

# What the policies said before (migration memories/0005 for update/delete, namespaces/0002 for insert),
# copied as those migrations wrote it: the reverse restores it whatever later migrations say.
_PREVIOUS_VISIBLE = """(
    access_level IN ('public', 'system')
    OR agent_id = tmws_current_agent()
    OR (access_level = 'shared' AND (
        namespace_id = ANY ((SELECT tmws_readable_namespace_ids(tmws_current_agent()))::uuid[])
        OR id IN (
            SELECT share.content_object_id
              FROM memories_memoryuserobjectpermission share
              JOIN auth_permission permission ON permission.id = share.permission_id
              JOIN agents ON agents.user_id = share.user_id
             WHERE agents.id = tmws_current_agent() AND permission.codename = 'view_memory')))
)"""
PREVIOUS_INSERT = "(agent_id = tmws_current_agent() OR access_level = 'system')"

POLICIES = f"""
ALTER POLICY memories_agent_update ON memories USING {WRITABLE} WITH CHECK {WRITABLE};
ALTER POLICY memories_agent_delete ON memories USING {WRITABLE};
ALTER POLICY memories_agent_insert ON memories WITH CHECK {INSERTABLE};
"""
PREVIOUS_POLICIES = f"""
ALTER POLICY memories_agent_update ON memories USING {_PREVIOUS_VISIBLE} WITH CHECK {_PREVIOUS_VISIBLE};
ALTER POLICY memories_agent_delete ON memories USING {_PREVIOUS_VISIBLE};
ALTER POLICY memories_agent_insert ON memories WITH CHECK {PREVIOUS_INSERT};
"""

# The privileges agent requests use, table by table. Reads that look principals up (agents, their
# users, permissions) are read-only; credentials (api_keys), sessions, the admin log, group and
# user-level Django permissions and the import records are not reachable at all. Writes on
# principals and their rights (agents, users, keys, namespaces, memberships, share grants) run as
# the service role inside the service that authorised them (core.db.as_service).
AGENT_GRANTS = {
    "memories": "SELECT, INSERT, UPDATE, DELETE",
    "memory_usage": "SELECT, DELETE",
    # Deleting a memory deletes its share grants; granting and revoking runs as the service.
    "memories_memoryuserobjectpermission": "SELECT, DELETE",
    "memories_memorygroupobjectpermission": "SELECT, DELETE",
    "namespaces": "SELECT",
    "namespaces_namespaceuserobjectpermission": "SELECT",
    "tasks": "SELECT, INSERT, UPDATE, DELETE",
    "tasks_dependencies": "SELECT, INSERT, DELETE",
    "workflows": "SELECT, INSERT, UPDATE, DELETE",
    "workflow_runs": "SELECT, INSERT, UPDATE, DELETE",
    "step_runs": "SELECT, INSERT, UPDATE, DELETE",
    # A persona-era ownership record goes with the memory, task or workflow it describes.
    "compat_persona_ownership": "SELECT, DELETE",
    # Persona-era ids resolve to agents only through the importer's links (API v1, persona tools).
    "compat_persona_link": "SELECT",
    "agents": "SELECT",
    "auth_user": "SELECT",
    "auth_permission": "SELECT",
    "django_content_type": "SELECT",
}
AGENT_SEQUENCES = ("tasks_dependencies_id_seq",)

LEAST_GRANTS = f"""
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {AGENT_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {AGENT_ROLE};
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {AGENT_ROLE};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {AGENT_ROLE};
""" + "".join(f"GRANT {privileges} ON {table} TO {AGENT_ROLE};\n" for table, privileges in AGENT_GRANTS.items()) + "".join(
    f"GRANT USAGE ON SEQUENCE {sequence} TO {AGENT_ROLE};\n" for sequence in AGENT_SEQUENCES
)
ALL_GRANTS = f"""
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {AGENT_ROLE};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {AGENT_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {AGENT_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {AGENT_ROLE};
"""


def _parent_constraint(on_delete: str) -> str:
    """Recreate the parent_memory foreign key with `on_delete` (its Django name, found in the catalogue)."""
    return f"""
DO $$
DECLARE
    name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
     WHERE conrelid = 'memories'::regclass AND contype = 'f'
       AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
                            WHERE attrelid = 'memories'::regclass AND attname = 'parent_memory_id')];
    EXECUTE format('ALTER TABLE memories DROP CONSTRAINT %I', name);
    EXECUTE format('ALTER TABLE memories ADD CONSTRAINT %I FOREIGN KEY (parent_memory_id) REFERENCES memories (id)'
                   ' {on_delete} DEFERRABLE INITIALLY DEFERRED', name);
END
$$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("memories", "0006_metrics_permission"),
        ("namespaces", "0002_row_level_security"),
        ("agents", "0002_initial"),
        ("workflows", "0001_initial"),
        ("compat", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="memory",
            name="parent_memory",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=models.DO_NOTHING, related_name="children", to="memories.memory",
            ),
        ),
        migrations.RunSQL(_parent_constraint("ON DELETE SET NULL"), _parent_constraint("")),
        migrations.RunSQL(FUNCTIONS + POLICIES, PREVIOUS_POLICIES + DROP_FUNCTIONS),
        migrations.RunSQL(LEAST_GRANTS, ALL_GRANTS),
    ]
