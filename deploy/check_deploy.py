"""Django's deployment checks under deploy/production.env.example: any warning fails (`make check-deploy`).

The example's placeholders become a generated SECRET_KEY and a host name; nothing else comes from the
caller's environment, so the check sees what a server loading that file would. `check` contacts no
database, so the example's DATABASE_URL and broker need not exist.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
ENV_FILE = PROJECT_DIR / "deploy" / "production.env.example"


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines; blank lines and # comments are skipped."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {name: value for name, value in pairs}


def main() -> int:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    env.update(read_env_file(ENV_FILE))
    env.update(SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="tmws.example.com")
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=PROJECT_DIR, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
