"""Row-level security on `memories`: the access module's read rule, repeated in SQL.

Agent requests run as the role `tmws_agent` with `app.current_agent_id` set (core/db.py).
The role the project connects as keeps full access through its own policy, so operators,
migrations and background jobs are unaffected. Superusers bypass RLS regardless.
"""
from django.db import migrations

AGENT_ROLE = "tmws_agent"

CURRENT_AGENT_FUNCTION = """
CREATE OR REPLACE FUNCTION tmws_current_agent() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('app.current_agent_id', true), '')::uuid
$$;
"""

VISIBLE = """(
    access_level IN ('public', 'system')
    OR agent_id = tmws_current_agent()
    OR (access_level = 'shared' AND (
        namespace_id IN (
            SELECT ancestor.id
              FROM namespaces ancestor
              JOIN namespaces own
                ON own.path = ancestor.path OR starts_with(own.path, ancestor.path || '/')
             WHERE own.id IN (
                   SELECT agents.namespace_id FROM agents WHERE agents.id = tmws_current_agent()
                   UNION
                   SELECT grant_.content_object_id
                     FROM namespaces_namespaceuserobjectpermission grant_
                     JOIN auth_permission permission ON permission.id = grant_.permission_id
                     JOIN agents ON agents.user_id = grant_.user_id
                    WHERE agents.id = tmws_current_agent()
                      AND permission.codename IN ('member_namespace', 'admin_namespace')))
        OR id IN (
            SELECT share.content_object_id
              FROM memories_memoryuserobjectpermission share
              JOIN auth_permission permission ON permission.id = share.permission_id
              JOIN agents ON agents.user_id = share.user_id
             WHERE agents.id = tmws_current_agent() AND permission.codename = 'view_memory')))
)"""

FORWARD = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{AGENT_ROLE}') THEN
        CREATE ROLE {AGENT_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    -- Granting needs ADMIN on the role, which a non-superuser lacks when a DBA created the role
    -- beforehand; a DBA's `GRANT {AGENT_ROLE} TO <app role>` is then all that is needed.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, '{AGENT_ROLE}', 'MEMBER') THEN
        EXECUTE format('GRANT {AGENT_ROLE} TO %I', current_user);
    END IF;
    EXECUTE format('CREATE POLICY memories_service ON memories TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;
GRANT USAGE ON SCHEMA public TO {AGENT_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {AGENT_ROLE};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {AGENT_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {AGENT_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {AGENT_ROLE};
{CURRENT_AGENT_FUNCTION}
ALTER TABLE memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE memories FORCE ROW LEVEL SECURITY;
CREATE POLICY memories_agent_select ON memories FOR SELECT TO {AGENT_ROLE} USING {VISIBLE};
CREATE POLICY memories_agent_update ON memories FOR UPDATE TO {AGENT_ROLE} USING {VISIBLE} WITH CHECK {VISIBLE};
CREATE POLICY memories_agent_delete ON memories FOR DELETE TO {AGENT_ROLE} USING {VISIBLE};
CREATE POLICY memories_agent_insert ON memories FOR INSERT TO {AGENT_ROLE}
    WITH CHECK (agent_id = tmws_current_agent() OR access_level = 'system');
"""

REVERSE = f"""
DROP POLICY IF EXISTS memories_agent_insert ON memories;
DROP POLICY IF EXISTS memories_agent_delete ON memories;
DROP POLICY IF EXISTS memories_agent_update ON memories;
DROP POLICY IF EXISTS memories_agent_select ON memories;
DROP POLICY IF EXISTS memories_service ON memories;
ALTER TABLE memories NO FORCE ROW LEVEL SECURITY;
ALTER TABLE memories DISABLE ROW LEVEL SECURITY;
DROP FUNCTION IF EXISTS tmws_current_agent();
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {AGENT_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {AGENT_ROLE};
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {AGENT_ROLE};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {AGENT_ROLE};
REVOKE USAGE ON SCHEMA public FROM {AGENT_ROLE};
"""


class Migration(migrations.Migration):
    dependencies = [
        ("namespaces", "0001_initial"),
        ("agents", "0001_initial"),
        ("memories", "0002_initial"),
        ("guardian", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
