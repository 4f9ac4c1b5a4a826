"""Every memory names the model that made its embedding.

Embeddings stored before this migration were all made by all-MiniLM-L6-v2, the only model the
service ran. The column is added with that name as its default, which PostgreSQL records without
rewriting the table (an UPDATE of every row would also have rewritten every HNSW entry); rows with
no embedding yet are then cleared, and new rows start empty (in the database too, for raw inserts).
"""

from django.db import migrations, models

LEGACY_MODEL_NAME = "all-MiniLM-L6-v2"


class Migration(migrations.Migration):

    dependencies = [
        ('memories', '0007_write_rule_and_least_grants'),
    ]

    operations = [
        migrations.AddField(
            model_name='memory',
            name='embedding_model',
            field=models.CharField(blank=True, default=LEGACY_MODEL_NAME, editable=False, max_length=100),
            preserve_default=False,
        ),
        migrations.RunSQL(
            "UPDATE memories SET embedding_model = '' WHERE embedding IS NULL",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name='memory',
            name='embedding_model',
            field=models.CharField(blank=True, db_default='', default='', editable=False, max_length=100),
        ),
        migrations.AddConstraint(
            model_name='memory',
            constraint=models.CheckConstraint(
                condition=models.Q(('embedding__isnull', True), models.Q(('embedding_model', ''), _negated=True),
                                   _connector='OR'),
                name='memories_embedding_names_its_model',
            ),
        ),
    ]
