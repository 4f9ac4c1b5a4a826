"""Turn every persona into an agent and point persona-era links at it; the reverse restores them."""
from django.conf import settings
from django.db import migrations


def forward(apps, schema_editor):
    from compat.conversion import personas_to_agents

    personas_to_agents(apps)


def reverse(apps, schema_editor):
    from compat.conversion import agents_to_personas

    agents_to_personas(apps)


class Migration(migrations.Migration):

    dependencies = [
        ("compat", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("guardian", "0003_remove_groupobjectpermission_guardian_gr_content_ae6aec_idx_and_more"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(forward, reverse, elidable=False)]
