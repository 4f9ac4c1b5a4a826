"""Consolidation and decay: retired memories, weights that decay, and erasure that reaches the admin log.

- `memories.retired_into`: the memory a merge folded this one into. The database deletes retired memories
  with the memory they went into (ON DELETE CASCADE, which runs as the table's owner and so reaches rows the
  deleting agent cannot see), so erasing a merged memory erases its originals too.
- The history trigger also records retiring and restoring (a change of `retired_into`), and records nothing
  for a change marked `decay` (`app.memory_change`): decay moves weights of many memories every hour, and history
  keeps what a memory says and who may read it, not that.
- Erasure: deleting memories also replaces their content in the admin's change log (`django_admin_log.object_repr`
  holds the first 80 characters of a memory the admin added, changed or deleted) with the memory's id.
- Erasure reaches the keyword statistics: a word's document count that falls to 0 was kept as a row holding
  the word, and an emptied bucket (per namespace and owner) kept the owner's id. A statement trigger that fires
  after the statistics triggers (triggers of one event fire in name order) deletes such rows.
- `memory_weight_decay`: when each agent's weights last decayed; written by the job only (no agent grant).
"""

import django.db.models.deletion
from django.db import migrations, models


TRACKED = ("content", "access_level", "namespace_id", "memory_category", "context_tags", "learning_weight",
           "retired_into_id")
PREVIOUSLY_TRACKED = TRACKED[:-1]

RECORD_VERSION = """
CREATE OR REPLACE FUNCTION tmws_record_memory_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF current_setting('app.memory_change', true) = 'decay' THEN
        RETURN NULL;
    END IF;
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
"""

ERASE_VERSIONS = """
CREATE OR REPLACE FUNCTION tmws_erase_memory_versions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM memory_versions version USING erased WHERE version.memory_id = erased.id;
    UPDATE django_admin_log log SET object_repr = 'Memory ' || erased.id
      FROM erased, django_content_type type
     WHERE type.app_label = 'memories' AND type.model = 'memory'
       AND log.content_type_id = type.id AND log.object_id = erased.id::text;
    RETURN NULL;
END
$$;
"""

ERASE_VERSIONS_BEFORE = """
CREATE OR REPLACE FUNCTION tmws_erase_memory_versions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM memory_versions version USING erased WHERE version.memory_id = erased.id;
    RETURN NULL;
END
$$;
"""


def _update_trigger(columns) -> str:
    condition = " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in columns)
    return f"""
DROP TRIGGER IF EXISTS memories_version_update ON memories;
CREATE TRIGGER memories_version_update AFTER UPDATE ON memories
    FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION tmws_record_memory_version();
"""


def cascade_from_memories(table: str, column: str, on_delete: str = "ON DELETE CASCADE") -> str:
    """Recreate `table`'s foreign key to memories with `on_delete` (its Django name, found in the catalogue).

    Rows the database deletes by itself (retired originals, through memories_retired_into_fk) take their
    hit counters, votes and shares with them; Django's own cascade still runs first for the rows it deletes.
    """
    return f"""
DO $$
DECLARE
    name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
     WHERE conrelid = '{table}'::regclass AND contype = 'f' AND confrelid = 'memories'::regclass
       AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attname = '{column}')];
    EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', name);
    EXECUTE format('ALTER TABLE {table} ADD CONSTRAINT %I FOREIGN KEY ({column}) REFERENCES memories (id)'
                   ' {on_delete} DEFERRABLE INITIALLY DEFERRED', name);
END
$$;
"""


DEPENDENTS = (("memory_usage", "memory_id"), ("memory_feedback", "memory_id"),
              ("memories_memoryuserobjectpermission", "content_object_id"),
              ("memories_memorygroupobjectpermission", "content_object_id"))

# Words whose counts this statement lowered, from the rows it deleted or whose words or bucket it changed.
PRUNE_FUNCTION = """
CREATE FUNCTION tmws_term_statistics_prune() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM memory_term_documents term
         USING (SELECT DISTINCT word.lexeme FROM old_rows row_ CROSS JOIN LATERAL unnest(row_.search_vector) word) gone
         WHERE term.term = gone.lexeme AND term.documents <= 0;
    ELSE
        DELETE FROM memory_term_documents term
         USING (SELECT DISTINCT word.lexeme
                  FROM old_rows JOIN new_rows USING (id)
                 CROSS JOIN LATERAL unnest(old_rows.search_vector) word
                 WHERE (old_rows.search_vector, old_rows.access_level, old_rows.namespace_id, old_rows.agent_id)
                       IS DISTINCT FROM (new_rows.search_vector, new_rows.access_level, new_rows.namespace_id,
                                         new_rows.agent_id)) gone
         WHERE term.term = gone.lexeme AND term.documents <= 0;
    END IF;
    DELETE FROM memory_term_buckets WHERE documents <= 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER memories_term_zeros_pruned_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tmws_term_statistics_prune();
CREATE TRIGGER memories_term_zeros_pruned_update AFTER UPDATE ON memories
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tmws_term_statistics_prune();
DELETE FROM memory_term_documents WHERE documents <= 0;
DELETE FROM memory_term_buckets WHERE documents <= 0;
"""

DROP_PRUNE_FUNCTION = """
DROP TRIGGER IF EXISTS memories_term_zeros_pruned_update ON memories;
DROP TRIGGER IF EXISTS memories_term_zeros_pruned_delete ON memories;
DROP FUNCTION IF EXISTS tmws_term_statistics_prune();
"""

RETIRED_CASCADE = """
ALTER TABLE memories ADD CONSTRAINT memories_retired_into_fk FOREIGN KEY (retired_into_id) REFERENCES memories (id)
    ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0002_initial'),
        ('memories', '0014_memory_expiry'),
        ('namespaces', '0002_row_level_security'),
        ('admin', '0003_logentry_add_action_flag_choices'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.CreateModel(
            name='WeightDecay',
            fields=[
                ('agent', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='agents.agent')),
                ('decayed_at', models.DateTimeField()),
            ],
            options={
                'db_table': 'memory_weight_decay',
            },
        ),
        migrations.AddField(
            model_name='memory',
            name='retired_into',
            field=models.ForeignKey(blank=True, db_constraint=False, editable=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='merged_originals', to='memories.memory'),
        ),
        migrations.AddIndex(
            model_name='memory',
            index=models.Index(condition=models.Q(('retired_into__isnull', False)), fields=['retired_into'], name='memories_retired_idx'),
        ),
        *(migrations.RunSQL(cascade_from_memories(table, column), cascade_from_memories(table, column, ""))
          for table, column in DEPENDENTS),
        migrations.RunSQL(RETIRED_CASCADE, "ALTER TABLE memories DROP CONSTRAINT memories_retired_into_fk;"),
        migrations.RunSQL(RECORD_VERSION + _update_trigger(TRACKED), _update_trigger(PREVIOUSLY_TRACKED)),
        migrations.RunSQL(ERASE_VERSIONS, ERASE_VERSIONS_BEFORE),
        migrations.RunSQL(PRUNE_FUNCTION, DROP_PRUNE_FUNCTION),
    ]
