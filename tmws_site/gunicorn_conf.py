"""gunicorn settings for `make run` (one process of TMWS_WEB_THREADS threads) and `make serve` (--workers, --threads 1).

One process keeps what `make run` has without a broker in one place: the background embedder thread
and the per-agent in-flight slots, which are counted per process without Redis. Eight threads stay
under the process's database pool (TMWS_DB_POOL_MAX, 10) with the embedder's connection, and above
the default in-flight limit (5), so a burst from one agent meets the limit instead of a queue.
"""
import os

bind = os.environ.get("TMWS_BIND") or "127.0.0.1:8000"
workers = 1
threads = int(os.environ.get("TMWS_WEB_THREADS") or 8)
# A burst waits in the kernel's accept queue (capped by net.core.somaxconn) instead of being reset:
# the development server's queue of 10 reset half of 100 concurrent connections.
backlog = 2048


def post_worker_init(worker) -> None:
    # Loaded here, not on the first search (a few seconds); after the fork, so the model's
    # thread pools belong to the worker process. Until then connections wait in the backlog.
    from memories.embeddings import warm_up

    warm_up()
