"""Redis stopped while agents write: the writes answer at once, and the sweep embeds them once it is back."""
from __future__ import annotations

import time

import pytest

from .conftest import SETTLE_SECONDS, SWEEP_SECONDS, attempts, statuses, wait_until

# Well under a second in practice: the after-commit publish gives up after bounded retries.
WRITE_SECONDS_BOUND = 3


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.mark.slow
def test_writes_during_a_redis_outage_answer_201_and_are_embedded_once_after_it_returns(
    private_redis, workers, make_namespace, make_agent
):
    # given: a worker (with the beat) embedding on the private broker
    make_namespace("team")
    writers = [make_agent(f"outage-writer-{index}", "team") for index in range(3)]
    worker, _ = workers.start("outage-worker", beat=True)
    before = writers[0].client.post("/api/v2/memories", {"content": "Written before the outage.", "namespace": "team"},
                                    format="json").json()["id"]
    wait_until(lambda: statuses([before]) == {"ready": 1}, SETTLE_SECONDS, f"the first memory\n{workers.logs()}")
    # when: Redis goes away and the agents keep writing, one at a time and in bulk
    private_redis.stop()
    ids, slowest = [], 0.0
    for index, writer in enumerate(writers):
        for number in range(5):
            response, seconds = _timed(lambda writer=writer, index=index, number=number: writer.client.post(
                "/api/v2/memories", {"content": f"Outage note {number} from writer {index}.", "namespace": "team"},
                format="json",
            ))
            assert response.status_code == 201, response.content
            assert response.json()["embedding_status"] == "pending"
            ids.append(response.json()["id"])
            slowest = max(slowest, seconds)
    items = [{"content": f"Bulk outage note {number}.", "namespace": "team"} for number in range(40)]
    response, seconds = _timed(lambda: writers[0].client.post("/api/v2/memories/bulk", {"memories": items}, format="json"))
    assert response.status_code == 201, response.content
    assert response.json()["count"] == 40
    ids += response.json()["ids"]
    slowest = max(slowest, seconds)
    # then: every write answered promptly, and nothing is embedded while the broker is away
    assert slowest < WRITE_SECONDS_BOUND
    time.sleep(3 * SWEEP_SECONDS)  # several sweeps find no broker
    assert statuses(ids) == {"pending": len(ids)}
    assert worker.poll() is None, workers.logs()
    # when: Redis returns (empty: it kept nothing on disk)
    private_redis.start()
    # then: the beat's sweep sends a drain; every memory is embedded, none lost, none twice
    wait_until(lambda: statuses(ids) == {"ready": len(ids)}, SETTLE_SECONDS,
               f"the outage's memories to be embedded: {statuses(ids)}\n{workers.logs()}")
    assert attempts(ids) == [1]
    assert attempts([before]) == [1]
