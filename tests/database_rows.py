"""Raw SQL over every table of the schema: what erasure tests check, with no ORM filter in between."""
from __future__ import annotations

from django.db import connection

# The audit trail keeps who did what with ids, an erased agent's name included (never content).
AUDIT_TABLE = "audit_entries"


def tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        return [row[0] for row in cursor.fetchall()]


def rows_mentioning(*needles: str, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """{table: rows whose text holds any needle}, over every table of the schema but `skip` (raw SQL, no ORM)."""
    found = {}
    with connection.cursor() as cursor:
        for table in tables():
            if table in skip:
                continue
            cursor.execute(
                f'SELECT count(*) FROM "{table}" row_ WHERE ' + " OR ".join("row_::text LIKE %s" for _ in needles),
                [f"%{needle}%" for needle in needles],
            )
            if count := cursor.fetchone()[0]:
                found[table] = count
    return found


def rows_referencing_user(user_id: int) -> dict[str, int]:
    """{table: rows} whose foreign keys to auth_user hold `user_id` (integers cannot be searched as text)."""
    found = {}
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT conrelid::regclass::text, attname FROM pg_constraint
              JOIN pg_attribute ON attrelid = conrelid AND attnum = conkey[1]
             WHERE contype = 'f' AND confrelid = 'auth_user'::regclass""")
        for table, column in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM {table} WHERE "{column}" = %s', [user_id])
            if count := cursor.fetchone()[0]:
                found[table] = found.get(table, 0) + count
        cursor.execute("SELECT count(*) FROM memory_versions WHERE changed_by_user_id = %s", [user_id])
        if count := cursor.fetchone()[0]:
            found["memory_versions"] = count
    return found


def table_sizes() -> dict:
    """{table: rows}: equal before and after an operation that must change nothing."""
    with connection.cursor() as cursor:
        counts = {}
        for table in tables():
            cursor.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cursor.fetchone()[0]
    return counts
