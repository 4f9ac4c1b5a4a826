"""gunicorn settings for `make serve`: each worker loads the embedding model before taking requests."""


def post_worker_init(worker) -> None:
    # Loaded here, not on the first search (a few seconds); after the fork, so the model's
    # thread pools belong to the worker process.
    from memories.embeddings import warm_up

    warm_up()
