"""Tagged candidates read from the tag index alone, then checked for visibility row by row.

The planner combined the tag index with bitmaps of the visibility predicate (every public,
shared and own memory: most of the table) and spent more building those than the rest of the
search: 5.8 ms for a tag on 1% of 100,000 memories, 109 of them readable. Materialising the tagged
rows first and applying the predicate to them takes 2.9 ms. A tag on a tenth of all memories gets
slower (19 to 23 ms), which is where a tag stops narrowing a search anyway.
"""
import importlib

from django.db import migrations

VISIBLE = importlib.import_module("memories.migrations.0005_rls_planned_cheaply").VISIBLE
search_functions = importlib.import_module("memories.migrations.0003_search_under_rls").search_functions

FORWARD = f"""
CREATE OR REPLACE FUNCTION tmws_tagged_memory_ids(tags jsonb) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 200 AS $$
    WITH tagged AS MATERIALIZED (
        SELECT id, access_level, agent_id, namespace_id FROM memories WHERE context_tags @> tags
    )
    SELECT id FROM tagged WHERE {VISIBLE}
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("memories", "0011_keyword_postings")]

    operations = [migrations.RunSQL(FORWARD, search_functions(VISIBLE))]
