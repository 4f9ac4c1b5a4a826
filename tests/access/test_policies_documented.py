"""docs/access-control.md shows every row-level security policy exactly as the database holds it.

Operators and reviewers learn what the safety net enforces from that page; the policies themselves
are the sum of several migrations. Comparing the page with `pg_policies` makes a migration that
changes a policy fail here until the page says what the database now does.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connection

DOC = Path(__file__).resolve().parents[2] / "docs" / "access-control.md"
SECTION = "### The policies in force"
FIELDS = ("table", "policy", "command", "roles", "permissive", "using", "with check")
FIELD_LINE = re.compile(r"^(table|policy|command|roles|permissive|using|with check):\s*(.*)$")
# The doc's stand-ins for what differs between databases or is not text.
SERVICE_ROLES = "{<service role>}"
NULL = "(none)"


def normalised(text: str) -> str:
    """`text` with every run of whitespace made one space (PostgreSQL's line breaks are layout only)."""
    return " ".join(text.split())


def parse_block(lines: list[str]) -> dict[str, str]:
    """One fenced block: `field: value` lines, where a value may go on over the lines that follow."""
    values: dict[str, list[str]] = {}
    field = None
    for line in lines:
        match = FIELD_LINE.match(line)
        if match:
            field = match.group(1)
            assert field not in values, f"{field!r} twice in a block"
            values[field] = [match.group(2)]
        else:
            assert field is not None, f"text before the first field: {line!r}"
            values[field].append(line)
    return {field: normalised("\n".join(text)) for field, text in values.items()}


def documented_policies() -> list[dict[str, str]]:
    """The fenced blocks of the doc's section on the policies in force, parsed."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(SECTION)
    end = next(
        (number for number in range(start + 1, len(lines)) if re.match(r"^#{1,3} ", lines[number])), len(lines)
    )
    blocks, block = [], None
    for line in lines[start + 1:end]:
        if line.startswith("```"):
            if block is None:
                block = []
            else:
                blocks.append(parse_block(block))
                block = None
        elif block is not None:
            block.append(line)
    assert block is None, "a fenced block is not closed"
    return blocks


def database_policies() -> list[dict[str, str]]:
    """Every policy in `pg_policies`, as the doc writes it."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT schemaname || '.' || tablename, policyname, cmd,
                   CASE WHEN roles = ARRAY[current_user]::name[] THEN %s ELSE roles::text END,
                   permissive, coalesce(qual, %s), coalesce(with_check, %s)
              FROM pg_policies
            """,
            [SERVICE_ROLES, NULL, NULL],
        )
        rows = cursor.fetchall()
    return [{field: normalised(value) for field, value in zip(FIELDS, row, strict=True)} for row in rows]


def by_name(policies: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    return {(policy["table"], policy["policy"]): policy for policy in policies}


def test_every_documented_block_names_each_field_once():
    # when
    documented = documented_policies()
    # then
    assert [tuple(policy) for policy in documented] == [FIELDS] * len(documented)
    assert len(by_name(documented)) == len(documented)


@pytest.mark.django_db
def test_the_documented_policies_are_the_policies_in_force():
    # given
    documented = by_name(documented_policies())
    # when
    in_force = by_name(database_policies())
    # then
    assert sorted(documented) == sorted(in_force)
    for key in sorted(in_force):
        assert documented[key] == in_force[key], key
