"""Fixtures shared by every test: namespaces, agents with keys, and API clients per principal.

Tests run against the real embedded PostgreSQL + pgvector (a `test_` database on the project's
server) and the real embedding model; Celery runs eagerly unless a test starts a worker, and
embeddings are computed synchronously on commit unless a test asks for `background_embedding`.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from access import SYSTEM
from agents.contracts import RegisterAgent
from agents.services import register_agent
from namespaces.contracts import AddMember, CreateNamespace
from namespaces.services import add_member, create_namespace

# The suite embeds at int8, whatever this machine's `auto` measurement would choose, so no outcome
# depends on it (processes the tests start inherit this); tests that compare similarities with a
# threshold run at both precisions (`precision`), and the choice itself is tested on fixed figures.
TEST_PRECISION = "int8"
os.environ["TMWS_EMBEDDING_PRECISION"] = TEST_PRECISION


@pytest.fixture(autouse=True)
def _pinned_precision(settings):
    settings.TMWS_EMBEDDING_PRECISION = TEST_PRECISION


@pytest.fixture(params=["int8", "float32"])
def precision(request, settings):
    """Run the test at each precision (the encoders stay loaded side by side, so switching is free)."""
    settings.TMWS_EMBEDDING_PRECISION = request.param
    return request.param


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _in_process_celery(settings):
    """Background jobs run in-process in tests, even if the shell exports CELERY_BROKER_URL."""
    from tmws_site.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _synchronous_embedding():
    """Embeddings are computed on commit in the test's own thread, so a test sees them right after a write.

    Web processes without a broker embed in a background thread instead (memories.background); the
    tests of that thread opt in with the `background_embedding` fixture.
    """
    from memories import background

    background.stop()
    yield


@pytest.fixture
def background_embedding(transactional_db):
    """The web process's embedder thread, on for one test (rows must be committed for it to see them)."""
    from memories import background

    background.start_if_no_broker()
    assert background.in_background()
    yield background
    background.stop()


def redis_url() -> str:
    return os.environ.get("TMWS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(redis_url(), socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture
def require_redis():
    """Skip without Redis, unless TMWS_REQUIRE_REDIS=1 (CI), where a missing Redis fails the test."""
    if not redis_available():
        if os.environ.get("TMWS_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis is required (TMWS_REQUIRE_REDIS=1) but not reachable at {redis_url()}")
        pytest.skip(f"Redis not reachable at {redis_url()}")
    return redis_url()


@pytest.fixture
def make_namespace(db):
    def make(slug: str, parent: str | None = None, policy: str = "invite_only"):
        return create_namespace(SYSTEM, CreateNamespace.parse({"namespace": slug, "parent_namespace": parent,
                                                               "access_policy": policy}))

    return make


class AgentHandle:
    """An agent, its plaintext key and an API client authenticated as it."""

    def __init__(self, agent, key: str):
        self.agent = agent
        self.key = key
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    @property
    def agent_id(self) -> str:
        return self.agent.agent_id


@pytest.fixture
def make_agent(db):
    def make(agent_id: str, namespace: str, access_level: str = "standard", **extra) -> AgentHandle:
        data = RegisterAgent.parse({"agent_id": agent_id, "namespace": namespace, "access_level": access_level, **extra})
        agent, key = register_agent(SYSTEM, data)
        return AgentHandle(agent, key)

    return make


@pytest.fixture
def operator_user(db):
    return get_user_model().objects.create_superuser("operator", "op@example.com", "op-pass-123!")


@pytest.fixture
def operator_client(operator_user):
    client = APIClient()
    client.force_authenticate(operator_user)
    return client


@pytest.fixture
def team(make_namespace, make_agent):
    """The usual cast: `team` (child of `company`, parent of `squad`), `other`; owner, member, outsider."""
    make_namespace("company")
    make_namespace("team", parent="company")
    make_namespace("squad", parent="team")
    make_namespace("other")
    cast = {
        "owner": make_agent("owner-agent", "team"),
        "member": make_agent("member-agent", "team"),
        "descendant": make_agent("squad-agent", "squad"),
        "ancestor": make_agent("company-agent", "company"),
        "outsider": make_agent("outsider-agent", "other"),
        "sharee": make_agent("sharee-agent", "other"),
        "admin": make_agent("admin-agent", "other", access_level="admin"),
        "ns_admin": make_agent("ns-admin-agent", "other"),
    }
    from namespaces.models import Namespace

    add_member(_system_operator(), Namespace.objects.get(namespace="team"),
               AddMember.parse({"agent_id": cast["ns_admin"].agent_id, "role": "admin"}))
    return cast


def _system_operator():
    user, _ = get_user_model().objects.get_or_create(
        username="fixture-operator", defaults={"is_staff": True, "is_superuser": True}
    )
    return user


@pytest.fixture(scope="session")
def second_model_folder(tmp_path_factory):
    """A second real model: all-MiniLM-L6-v2's weights with CLS pooling and a query prompt, as bge-small does.

    Its vectors differ from MiniLM's (another pooling) while nothing is downloaded; the weights are linked.
    """
    import json
    import shutil

    from memories.embeddings import KNOWN_MODELS

    source = Path(KNOWN_MODELS["minilm"][1]("minilm"))
    folder = tmp_path_factory.mktemp("models") / "minilm-cls"
    folder.mkdir()
    for path in source.iterdir():
        if path.is_dir():
            shutil.copytree(path, folder / path.name)
        elif path.stat().st_size > 1_000_000:
            (folder / path.name).symlink_to(path)
        else:
            shutil.copy(path, folder / path.name)
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({**json.loads(pooling.read_text()),
                                   "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    config = folder / "config_sentence_transformers.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "prompts": {"query": "query: ", "document": ""}}))
    return folder


@pytest.fixture
def use_model(settings):
    """Switch the configured embedding model (a name or a folder) for the rest of the test; MiniLM comes back after."""
    from memories import embeddings

    def switch(value: str, backend: str = "torch"):
        settings.TMWS_EMBEDDING_MODEL = str(value)
        settings.TMWS_EMBEDDING_BACKEND = backend
        embeddings.unload()
        return embeddings.configured_model()

    yield switch
    embeddings.unload()


@pytest.fixture
def counted(django_assert_num_queries, monkeypatch):
    """Send a request under an exact query count and answer its JSON body (status 200 asserted).

    `counted(client, url, queries)` GETs; with `body=` it POSTs. Searches start without the planner
    estimates earlier searches kept (memories.search keeps one a minute per candidate query), so each
    costs what a first search of its kind does, however the test's earlier searches went.
    """
    from memories import search as memory_search

    def request(client, url: str, queries: int, body: dict | None = None) -> dict:
        monkeypatch.setattr(memory_search, "_estimates", {})
        with django_assert_num_queries(queries):
            response = client.get(url) if body is None else client.post(url, body, format="json")
        assert response.status_code == 200, response.content
        return response.json()

    return request
