"""A persona link goes with its memory also when the database deletes the memory by itself (the retired
originals of a merge go with the memory they went into: memories/0015)."""
from django.db import migrations


def _foreign_key(on_delete: str) -> str:
    """Recreate compat_persona_ownership's foreign key to memories with `on_delete` (its name from the catalogue)."""
    return f"""
DO $$
DECLARE
    name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
     WHERE conrelid = 'compat_persona_ownership'::regclass AND contype = 'f' AND confrelid = 'memories'::regclass
       AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
                            WHERE attrelid = 'compat_persona_ownership'::regclass AND attname = 'memory_id')];
    EXECUTE format('ALTER TABLE compat_persona_ownership DROP CONSTRAINT %I', name);
    EXECUTE format('ALTER TABLE compat_persona_ownership ADD CONSTRAINT %I FOREIGN KEY (memory_id) REFERENCES memories (id)'
                   ' {on_delete} DEFERRABLE INITIALLY DEFERRED', name);
END
$$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("compat", "0002_personas_to_agents"),
        ("memories", "0015_consolidation_and_decay"),
    ]

    operations = [
        migrations.RunSQL(_foreign_key("ON DELETE CASCADE"), _foreign_key("")),
    ]
