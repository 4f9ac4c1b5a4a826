"""Agent requests resolve persona-era ids through the importer's links (API v1, persona tools): read-only."""
from django.db import migrations

AGENT_ROLE = "tmws_agent"


class Migration(migrations.Migration):

    dependencies = [
        ("compat", "0002_personas_to_agents"),
        ("memories", "0007_write_rule_and_least_grants"),
    ]

    operations = [
        migrations.RunSQL(
            f"GRANT SELECT ON compat_persona_link TO {AGENT_ROLE};",
            f"REVOKE ALL ON compat_persona_link FROM {AGENT_ROLE};",
        ),
    ]
