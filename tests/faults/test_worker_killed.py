"""A Celery worker killed with SIGKILL in the middle of an embedding batch loses nothing."""
from __future__ import annotations

import signal

import pytest
from django.db import connection

from .conftest import SETTLE_SECONDS, attempts, statuses, wait_until

MEMORIES = 150
PER_REQUEST = 25  # below the model batch: these writes go to the drain, as single creates do


def _batch_in_progress() -> bool:
    """Another session holds an open write transaction on the test database: a drain's batch is being embedded."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_xid IS NOT NULL"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.slow
def test_a_worker_killed_mid_batch_leaves_every_memory_embedded_once(workers, make_namespace, make_agent):
    # given: one worker draining a backlog of memories
    make_namespace("team")
    writer = make_agent("kill-writer", "team")
    ids = []
    for start in range(0, MEMORIES, PER_REQUEST):
        items = [{"content": f"Backlog note {number} about the deployment.", "namespace": "team"}
                 for number in range(start, start + PER_REQUEST)]
        response = writer.client.post("/api/v2/memories/bulk", {"memories": items}, format="json")
        assert response.status_code == 201, response.content
        ids += response.json()["ids"]
    doomed, _ = workers.start("doomed-worker")
    wait_until(lambda: statuses(ids).get("ready", 0) > 0 and _batch_in_progress(), SETTLE_SECONDS,
               f"the worker to be inside a batch\n{workers.logs()}", interval=0.05)
    # when: the worker dies without any chance to clean up
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    # then: its batch was rolled back, part of the backlog still waits
    left = statuses(ids)
    assert 0 < left.get("ready", 0) < len(ids) and left.get("pending", 0) > 0, left
    # when: another worker (with the beat) runs; the dead drain's flag expires and the sweep sends a new one
    workers.start("rescue-worker", beat=True)
    # then: every memory ends ready, each embedded exactly once
    assert len(ids) == MEMORIES
    wait_until(lambda: statuses(ids) == {"ready": MEMORIES}, SETTLE_SECONDS,
               f"the backlog to be embedded: {statuses(ids)}\n{workers.logs()}")
    assert attempts(ids) == [1]
