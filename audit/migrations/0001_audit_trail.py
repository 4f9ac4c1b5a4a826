"""The audit trail's table, append-only: no grant for the agent role, and no UPDATE or DELETE for anyone.

- `audit_entries` is written by `audit.services.record` as the service's own role (also inside an agent's
  request), so the agent role `tmws_agent` gets no privilege on it or its sequence: an agent's request, raw SQL
  included, can neither read, forge, change nor delete an entry.
- `tmws_audit_entries_append_only()` (BEFORE UPDATE OR DELETE, per row) refuses both for every role, the
  service's included: entries are never rewritten. (TRUNCATE, the table owner's alone, empties test databases.)
"""

import django.utils.timezone
from django.db import migrations, models

AGENT_ROLE = "tmws_agent"

APPEND_ONLY = f"""
REVOKE ALL ON audit_entries FROM PUBLIC;
REVOKE ALL ON audit_entries FROM {AGENT_ROLE};
REVOKE ALL ON SEQUENCE audit_entries_id_seq FROM PUBLIC;
REVOKE ALL ON SEQUENCE audit_entries_id_seq FROM {AGENT_ROLE};
CREATE OR REPLACE FUNCTION tmws_audit_entries_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION tmws_audit_entries_append_only();
"""

REVERSE = """
DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries;
DROP FUNCTION IF EXISTS tmws_audit_entries_append_only();
"""


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        # The agent role exists from here on.
        ('namespaces', '0002_row_level_security'),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('actor', models.CharField(blank=True, db_index=True, max_length=200, null=True)),
                ('actor_kind', models.CharField(choices=[('agent', 'Agent'), ('operator', 'Operator'), ('system', 'System')], max_length=16)),
                ('action', models.CharField(choices=[('memory.share', 'Memory shared with agents'), ('memory.unshare', 'Memory un-shared from agents'), ('memory.restore', 'Memory restored to an earlier version'), ('memory.merge', 'Memories merged into one'), ('memory.delete', 'Memory deleted'), ('memories.import', 'Memories imported'), ('memories.export', 'Memories exported'), ('namespace.create', 'Namespace created'), ('namespace.update', 'Namespace changed'), ('namespace.delete', 'Namespace deleted'), ('namespace.member_add', 'Member added to a namespace'), ('namespace.member_remove', 'Member removed from a namespace'), ('namespace.role_change', "Member's role changed"), ('namespace.operator_rights', "Operator's rights on a namespace changed"), ('agent.register', 'Agent registered'), ('agent.update', 'Agent changed'), ('agent.retire', 'Agent retired'), ('agent.purge', 'Agent purged'), ('agent.key_rotate', "Agent's API key rotated"), ('agent.key_issue', 'Operator API key issued'), ('agent.key_revoke', 'API keys revoked'), ('admin.add', 'Added in the admin'), ('admin.change', 'Changed in the admin'), ('admin.delete', 'Deleted in the admin')], db_index=True, max_length=64)),
                ('object_type', models.CharField(blank=True, default='', max_length=100)),
                ('object_id', models.CharField(blank=True, db_index=True, default='', max_length=255)),
                ('namespace_id', models.UUIDField(blank=True, null=True)),
                ('namespace_path', models.CharField(blank=True, default='', max_length=600)),
                ('before', models.JSONField(blank=True, null=True)),
                ('after', models.JSONField(blank=True, null=True)),
                ('request_id', models.CharField(blank=True, default='', max_length=128)),
            ],
            options={
                'verbose_name': 'audit entry',
                'verbose_name_plural': 'audit entries',
                'db_table': 'audit_entries',
                'ordering': ['-id'],
                'indexes': [models.Index(fields=['namespace_id', '-id'], name='audit_entries_namespace_idx')],
                'constraints': [models.CheckConstraint(condition=models.Q(('action__in', ['memory.share', 'memory.unshare', 'memory.restore', 'memory.merge', 'memory.delete', 'memories.import', 'memories.export', 'namespace.create', 'namespace.update', 'namespace.delete', 'namespace.member_add', 'namespace.member_remove', 'namespace.role_change', 'namespace.operator_rights', 'agent.register', 'agent.update', 'agent.retire', 'agent.purge', 'agent.key_rotate', 'agent.key_issue', 'agent.key_revoke', 'admin.add', 'admin.change', 'admin.delete'])), name='audit_entries_action_valid'), models.CheckConstraint(condition=models.Q(('actor_kind__in', ['agent', 'operator', 'system'])), name='audit_entries_actor_kind_valid')],
            },
        ),
        migrations.RunSQL(APPEND_ONLY, REVERSE),
    ]
