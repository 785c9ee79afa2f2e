"""One settings file, driven by environment variables (see README "Configuration").

Defaults suit a laptop: SQLite under var/, Redis on localhost (the run command starts an
embedded one when none answers). Production sets DATABASE_URL, REDIS_URL, SECRET_KEY.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from llmweb.core.instance import channel_layer_prefix, instance_name, redis_key_prefix

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


VAR_DIR = Path(os.environ.get("LLMWEB_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Under pytest, each session is its own instance (Redis namespace), with its own test
# database file and storage folder, so two test runs on one machine (or a dev server beside
# them) never share a queue. The session process names it; worker and server subprocesses
# inherit LLMWEB_TEST_RUN and LLMWEB_INSTANCE through the environment (a test may hand a
# child another instance on purpose).
TEST_RUN = ""
if os.environ.get("PYTEST_VERSION"):
    if "LLMWEB_TEST_RUN" not in os.environ:
        os.environ["LLMWEB_TEST_RUN"] = str(os.getpid())
        os.environ["LLMWEB_INSTANCE"] = f"test{os.environ['LLMWEB_TEST_RUN']}"
    TEST_RUN = os.environ["LLMWEB_TEST_RUN"]

# One deployment, one namespace: broker keys, result keys, channel-layer prefix and worker
# names carry this (llmweb/core/instance.py says why and how it is derived).
LLMWEB_INSTANCE = instance_name(VAR_DIR)
LLMWEB_REDIS_PREFIX = redis_key_prefix(LLMWEB_INSTANCE)


def _secret_key() -> str:
    # A generated key kept under var/ so sessions survive restarts on a dev machine.
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("DEBUG", False)

# Served over HTTPS behind a proxy that sets X-Forwarded-Proto (docker-compose runs Caddy):
# secure cookies, HSTS, redirect to https. The app port must then be reachable only by
# the proxy, since it trusts that header. Off on a laptop (plain http://localhost).
LLMWEB_HTTPS = envbool("LLMWEB_HTTPS", False)
if LLMWEB_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the container health check speaks http
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("LLMWEB_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("LLMWEB_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("LLMWEB_HSTS_PRELOAD", False)
# Preloading is a domain owner's decision (hard to undo), not a default of ours.
SILENCED_SYSTEM_CHECKS = [] if envbool("LLMWEB_HSTS_PRELOAD", False) else ["security.W021"]
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "axes",
    "llmweb.accounts",
    "llmweb.catalog",
    "llmweb.evaluations",
    "llmweb.web",
    "llmweb.api",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside the others, so their HTML errors under /api/ become JSON too.
    "llmweb.api.middleware.ApiJsonErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "llmweb.security.ContentSecurityPolicyMiddleware",
    "llmweb.accounts.middleware.ActiveTeamMiddleware",
    # Last, as django-axes asks: it turns a locked-out log-in into our 429 response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "llmweb.urls"
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
                "llmweb.accounts.context_processors.teams",
            ],
        },
    },
]
ASGI_APPLICATION = "llmweb.asgi.application"
WSGI_APPLICATION = None

# Database: SQLite file by default, anything dj-database-url understands via DATABASE_URL.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'llmweb.sqlite3'}", conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web, worker and tests share one file; WAL lets readers run beside the writer.
    # How long a write waits for another writer's lock before "database is locked" (the
    # worker then retries it: jobs.reporting.db_retry). The fault tests shorten it.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": envint("LLMWEB_SQLITE_TIMEOUT", 30),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    # Tests with a real worker process need a file that process can open, not :memory:.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_llmweb_{TEST_RUN or 0}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
STORAGE_DIR = Path(os.environ.get("LLMWEB_STORAGE_DIR", VAR_DIR / "storage"))
MEDIA_ROOT = STORAGE_DIR

# Uploads stream to temporary files past 2.5 MB; the web process never holds a file whole.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_TEMP_DIR = None
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
LLMWEB_MAX_UPLOAD_BYTES = envint("LLMWEB_MAX_UPLOAD_BYTES", 1024**3)
LLMWEB_ALLOW_HUB = envbool("LLMWEB_ALLOW_HUB", False)
# A fuzz run made 432 teams and 273 tokens for one user; nobody needs that many.
LLMWEB_MAX_TEAMS_PER_USER = envint("LLMWEB_MAX_TEAMS_PER_USER", 50)
LLMWEB_MAX_TOKENS_PER_USER = envint("LLMWEB_MAX_TOKENS_PER_USER", 50)

# Redis: broker, result backend and channel layer.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Rate-limit state (log-in lockout, API throttles) is shared by every web process of the
# deployment, so it lives in Redis under the instance prefix. The default cache stays local.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{LLMWEB_REDIS_PREFIX}cache",
    },
}
# Log-in lockout (django-axes): per user *and* address, so a stranger cannot lock an owner
# out from elsewhere; a success resets the count; 429 with Retry-After.
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_CACHE = "shared"
AXES_FAILURE_LIMIT = envint("LLMWEB_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LLMWEB_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "llmweb.accounts.lockout.lockout_response"
AXES_VERBOSE = False
# API: requests per token (DRF throttle); invalid tokens per address; sign-ups per address.
LLMWEB_API_RATE = os.environ.get("LLMWEB_API_RATE", "1200/min")
LLMWEB_TOKEN_FAILURES_PER_MINUTE = envint("LLMWEB_TOKEN_FAILURES_PER_MINUTE", 20)
LLMWEB_SIGNUPS_PER_HOUR = envint("LLMWEB_SIGNUPS_PER_HOUR", 10)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            "capacity": 1500,
            "expiry": 60,
            "prefix": channel_layer_prefix(LLMWEB_INSTANCE),
        },
    }
}

# Celery: long jobs. acks_late + reject_on_worker_lost give a killed pool child's task
# back to the broker; the visibility timeout is longer than any training run so a healthy
# job is not delivered twice (the DB heartbeat reaper handles dead workers quickly).
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 7 * 24 * 3600,
    # Job priority: ten Redis priority lists, consumed in order (jobs.services maps the
    # API's "higher first" onto Redis's "0 first").
    "priority_steps": list(range(10)),
    "queue_order_strategy": "priority",
    "global_keyprefix": LLMWEB_REDIS_PREFIX,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": LLMWEB_REDIS_PREFIX}
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_DEFAULT_QUEUE = "default"
# Training jobs go to this queue (one worker per GPU consumes it).
LLMWEB_TRAIN_QUEUE = os.environ.get("LLMWEB_TRAIN_QUEUE", "gpu")
# Whether the training workers have CUDA GPUs (the web process cannot see them): GPU-only
# choices such as bitsandbytes quantization are refused up front without it.
LLMWEB_GPU_WORKERS = envbool("LLMWEB_GPU_WORKERS", False)
# Each job kind names its queue; jobs.services sends run_job there explicitly.
CELERY_TASK_ROUTES = {"jobs.tasks.generate": {"queue": "inference"}}
# Job kinds (the jobs.kinds registry): modules imported for their @register. A deployment
# (or a test) adds its own with LLMWEB_EXTRA_JOB_KINDS=pkg.module,other.module.
LLMWEB_JOB_KINDS = [
    "jobs.kinds.finetune",
    "jobs.kinds.pretrain",
    "jobs.kinds.evaluate",
    "jobs.kinds.compress",
    "jobs.kinds.distill",
    *[m.strip() for m in os.environ.get("LLMWEB_EXTRA_JOB_KINDS", "").split(",") if m.strip()],
]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
LLMWEB_QUEUES = ["gpu", "inference", "default"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "llmweb.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "llmweb.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["llmweb.api.throttling.TokenRateThrottle"],
    "DEFAULT_PARSER_CLASSES": [
        "llmweb.api.parsers.ObjectJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "llmweb API",
    "DESCRIPTION": "Datasets, models and jobs of your teams. Authenticate with "
    "`Authorization: Bearer <token>` (create one under Settings → API tokens).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # django-axes logs every successful log-in at INFO; lockouts are WARNING.
        "axes": {"level": "WARNING"},
    },
}

# Dead-worker detection: a running job heart-beats every few seconds; the reaper (beat)
# puts a job whose heartbeat is older than this back in the queue.
LLMWEB_HEARTBEAT_STALE_SECONDS = envint("LLMWEB_HEARTBEAT_STALE_SECONDS", 30)
LLMWEB_REAPER_INTERVAL_SECONDS = envint("LLMWEB_REAPER_INTERVAL_SECONDS", 15)
# Playground serving: the weights an inference worker keeps loaded (LRU beyond that), how
# long a request may wait for a worker to pick it up, and how long a started one may go
# without a message (the worker heart-beats every second) before the page says it died.
LLMWEB_INFERENCE_QUEUE = os.environ.get("LLMWEB_INFERENCE_QUEUE", "inference")
LLMWEB_INFERENCE_CACHE_MB = envint("LLMWEB_INFERENCE_CACHE_MB", 4096)
LLMWEB_PLAYGROUND_START_SECONDS = envint("LLMWEB_PLAYGROUND_START_SECONDS", 30)
LLMWEB_PLAYGROUND_STALL_SECONDS = envint("LLMWEB_PLAYGROUND_STALL_SECONDS", 5)
LLMWEB_PLAYGROUND_MAX_STREAMS = envint("LLMWEB_PLAYGROUND_MAX_STREAMS", 4)
# Past this many waiting requests the API answers 429 with Retry-After.
LLMWEB_PLAYGROUND_MAX_QUEUE = envint("LLMWEB_PLAYGROUND_MAX_QUEUE", 64)
# Datasets and model arrivals (llmweb/catalog/services/liveness.py): the same heartbeat rule, plus
# work that no worker claimed within this long is sent again, this many times, then failed.
LLMWEB_UNCLAIMED_REQUEUE_SECONDS = envint("LLMWEB_UNCLAIMED_REQUEUE_SECONDS", 600)
LLMWEB_LOST_WORK_MAX_REQUEUES = envint("LLMWEB_LOST_WORK_MAX_REQUEUES", 3)
CELERY_BEAT_SCHEDULE = {
    "reap-stale-jobs": {
        "task": "jobs.tasks.reap_stale_jobs",
        "schedule": float(LLMWEB_REAPER_INTERVAL_SECONDS),
        # The staleness rule travels with the message, so the beat host decides it.
        "args": (LLMWEB_HEARTBEAT_STALE_SECONDS,),
        "options": {"queue": "default", "expires": float(LLMWEB_REAPER_INTERVAL_SECONDS)},
    },
    "reap-lost-catalog-work": {
        "task": "llmweb.catalog.tasks.reap_lost_work",
        "schedule": float(LLMWEB_REAPER_INTERVAL_SECONDS),
        "options": {"queue": "default", "expires": float(LLMWEB_REAPER_INTERVAL_SECONDS)},
    },
    "clean-orphans": {
        "task": "llmweb.catalog.tasks.clean_orphans",
        "schedule": 3600.0,
        "options": {"queue": "default"},
    },
}
