"""Each migration carries its own SQL: none imports another migration or the project's code.

The RLS policies, grants and SQL functions in force are built by several migrations in turn. If a
migration took its SQL from another module, editing that module would silently change what an old
migration does, so a database migrated from zero would no longer match one migrated step by step.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = {"access", "agents", "audit", "compat", "core", "memories", "namespaces", "workflows", "tmws_site", "tests"}
MIGRATIONS = sorted(path for path in ROOT.glob("*/migrations/0*.py"))

# Not SQL, and deliberate: the field validator Django's autodetector referenced, and the persona
# conversion that the data migration and the import command share so both convert in one way.
ALLOWED = {
    ("namespaces/migrations/0001_initial.py", "namespaces.models"),
    ("compat/migrations/0002_personas_to_agents.py", "compat.conversion"),
}


def imported_modules(path: Path) -> list[str]:
    """Every module `path` imports, anywhere in the file (relative imports keep their leading dots)."""
    modules = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.append("." * node.level + (node.module or ""))
    return modules


def test_the_migrations_are_found():
    """A wrong glob would make the check below pass on nothing."""
    # then
    assert {
        "namespaces/migrations/0002_row_level_security.py", "memories/migrations/0005_rls_planned_cheaply.py",
        "memories/migrations/0011_keyword_postings.py",
    } <= {str(path.relative_to(ROOT)) for path in MIGRATIONS}


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_migration_imports_no_other_migration_nor_project_code(path):
    # given
    name = str(path.relative_to(ROOT))
    # when
    modules = imported_modules(path)
    # then
    forbidden = [
        module for module in modules
        if (module == "importlib" or module.startswith(".") or module.split(".")[0] in PROJECT_PACKAGES)
        and (name, module) not in ALLOWED
    ]
    assert forbidden == []
