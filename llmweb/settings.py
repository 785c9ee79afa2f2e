"""One settings file, driven by environment variables (see README "Configuration").

Defaults suit a laptop: SQLite under var/, Redis on localhost (the run command starts an
embedded one when none answers). Production sets DATABASE_URL, REDIS_URL, SECRET_KEY.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


VAR_DIR = Path(os.environ.get("LLMWEB_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Under pytest, each session gets its own Redis key prefix, test database file and storage
# folder, so two test runs on one machine (or a dev server beside them) never share a
# queue. Worker and server subprocesses inherit the id through the environment.
TEST_RUN = (
    os.environ.setdefault("LLMWEB_TEST_RUN", str(os.getpid()))
    if os.environ.get("PYTEST_VERSION")
    else ""
)


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
    "llmweb.accounts",
    "llmweb.catalog",
    "llmweb.web",
    "llmweb.api",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "llmweb.accounts.middleware.ActiveTeamMiddleware",
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
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    # Tests with a real worker process need a file that process can open, not :memory:.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_llmweb_{TEST_RUN or 0}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

# Redis: broker, result backend and channel layer.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            "capacity": 1500,
            "expiry": 60,
            "prefix": f"asgi{TEST_RUN}",
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
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7 * 24 * 3600}
if TEST_RUN:
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = f"test{TEST_RUN}:"
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
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

# Dead-worker detection: a running job heart-beats every few seconds; the reaper (beat)
# puts a job whose heartbeat is older than this back in the queue.
LLMWEB_HEARTBEAT_STALE_SECONDS = envint("LLMWEB_HEARTBEAT_STALE_SECONDS", 30)
LLMWEB_REAPER_INTERVAL_SECONDS = envint("LLMWEB_REAPER_INTERVAL_SECONDS", 15)
CELERY_BEAT_SCHEDULE = {
    "reap-stale-jobs": {
        "task": "jobs.tasks.reap_stale_jobs",
        "schedule": float(LLMWEB_REAPER_INTERVAL_SECONDS),
        # The staleness rule travels with the message, so the beat host decides it.
        "args": (LLMWEB_HEARTBEAT_STALE_SECONDS,),
        "options": {"queue": "default", "expires": float(LLMWEB_REAPER_INTERVAL_SECONDS)},
    },
    "clean-orphans": {
        "task": "llmweb.catalog.tasks.clean_orphans",
        "schedule": 3600.0,
        "options": {"queue": "default"},
    },
}
