"""The access module sits below the apps it rules on: it imports no other app's models."""
from __future__ import annotations

import ast
from pathlib import Path

from compat import adapter
from namespaces import access

PROJECT_APPS = ("agents", "memories", "namespaces", "workflows", "compat", "tmws_site")


def _project_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = ("namespaces." if node.level else "") + (node.module or "")
            found.add(module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in PROJECT_APPS}


def test_access_imports_only_namespace_models_and_plain_values():
    # when: every import, at module level or inside functions
    imports = _project_imports(Path(access.__file__))
    # then
    assert imports == {"namespaces.models", "memories.choices"}


def test_the_reserved_metadata_keys_are_the_importers_keys():
    assert access.RESERVED_METADATA_KEYS["agent"] == (adapter.PERSONA_METADATA_KEY,)
    assert access.RESERVED_METADATA_KEYS["memory"] == (adapter.MEMORY_LEGACY_KEY,)
