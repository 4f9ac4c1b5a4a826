"""Index-friendly search candidates under row-level security, and embeddings kept inline.

Under RLS, PostgreSQL evaluates the policy before any non-leakproof operator, so `@>` on tags
and `@@` on the text-search vector cannot drive their GIN indexes for agent requests; every
visible row would be tested. These SECURITY DEFINER functions run the indexed match as the
table owner and apply the same visibility predicate as the policy (for the agent named in
`app.current_agent_id`), returning only ids the agent may read. Search joins them on `id`
(a leakproof equality), so the GIN index does the narrowing and RLS still checks every row.

Embeddings are stored PLAIN: a tuple over 2 kB would otherwise move its 1.5 kB vector out of
line into TOAST, costing a second lookup for every distance computed.
"""
from django.db import migrations

# The policy's predicate itself (its column names resolve to the one table in FROM), as migration
# namespaces/0002 created it. A copy, not an import: this migration must do the same whatever
# later migrations say.
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


def search_functions(visible: str) -> str:
    """The index-friendly match functions, applying the visibility predicate `visible`."""
    return f"""
CREATE OR REPLACE FUNCTION tmws_tagged_memory_ids(tags jsonb) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 200 AS $$
    SELECT id FROM memories WHERE context_tags @> tags AND {visible}
$$;

CREATE OR REPLACE FUNCTION tmws_text_match_ids(query tsquery) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 500 AS $$
    SELECT id FROM memories WHERE search_vector @@ query AND {visible}
$$;
"""


FORWARD = """
ALTER TABLE memories ALTER COLUMN embedding SET STORAGE PLAIN;
""" + search_functions(VISIBLE)

REVERSE = """
DROP FUNCTION IF EXISTS tmws_text_match_ids(tsquery);
DROP FUNCTION IF EXISTS tmws_tagged_memory_ids(jsonb);
ALTER TABLE memories ALTER COLUMN embedding SET STORAGE EXTERNAL;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("memories", "0002_initial"),
        ("namespaces", "0002_row_level_security"),
    ]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
