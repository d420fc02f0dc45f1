"""Settings for the Molam safe-upgrade control plane.

Configuration comes only from environment variables (django-environ). With none set, the
project runs on an embedded default: SQLite and an on-disk Celery broker, so one command
starts it on a fresh machine. Production and the test suite set ``DATABASE_URL`` and
``REDIS_URL`` to PostgreSQL and Redis.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Secure by default: a deployment that forgets DEBUG runs as production (no technical error
# pages, no development key). ``make run`` and the test suite set DEBUG=1 explicitly.
DEBUG = env.bool("DEBUG", default=False)
# A development key is only acceptable when DEBUG is on; production must set SECRET_KEY.
SECRET_KEY = env.str(
    "SECRET_KEY",
    default="dev-only-insecure-key-change-me" if DEBUG else environ.Env.NOTSET,
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env.str("MOLAM_VAR_DIR", default=str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "molam_upgrades",
    "backups",
    "rollbacks",
    # Before rollouts: its API route rollouts/simulate must resolve before rollouts/<plugin_name>.
    "plans",
    "rollouts",
    "merchants",
    "payments",
]

MIDDLEWARE = [
    "molam_upgrades.middleware.RequestIdMiddleware",
    # Outermost after the request id: times and counts every answer, redirects and errors too.
    "molam_upgrades.request_metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "molam_upgrades.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "molam_upgrades.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "molam_upgrades.session_idle.SessionIdleRenewalMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-axes: must come last (it turns a locked-out login into the lockout page).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "molam_upgrades.urls"
WSGI_APPLICATION = "molam_upgrades.wsgi.application"

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

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the Celery worker share the embedded database.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000;"
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Covering indexes (INCLUDE) are a PostgreSQL optimisation; SQLite just builds the plain index.
# axes.W006: lockout is by username on purpose (settings below: behind the proxy every client
# has the proxy's address).
SILENCED_SYSTEM_CHECKS = ["models.W040", "security.W021", "axes.W006"]

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="molam"),
            "TIMEOUT": 300,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Production: hashed names (cached forever by browsers) and gzip/brotli copies, both made
    # by collectstatic when the image is built.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Request bodies over 1 MiB are refused with 413 (BodySizeLimitMiddleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# --- Security (python manage.py check --deploy passes with DEBUG=0) -------------------------
# X-Forwarded-Proto is believed only when the operator says a proxy sets it (compose: Caddy, the
# only way in). Trusted by default, any client reaching the app directly could claim HTTPS.
TRUST_PROXY_HEADERS = env.bool("TRUST_PROXY_HEADERS", default=False)
if TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Container healthchecks and Prometheus may speak plain HTTP on the internal network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
# Preloading is a commitment to the browsers' lists, for the operator to make (W021 silenced).
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Idle timeout: a session ends SESSION_IDLE_TIMEOUT seconds after its last request (renewed
# at most once a minute by session_idle.py; the dashboards' live refresh counts as activity
# while the tab is visible).
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Messages live server-side: a credential's token shown once in the admin must not travel in
# a (signed, not encrypted) cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Brute-force protection on /login/ and /admin/login/ (django-axes, database handler so every
# web worker sees the same counts). Locked by username: behind the proxy every client shares
# one address, so an address-based lock would lock everybody out at once.
AUTHENTICATION_BACKENDS = [
    "molam_upgrades.lockout.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False

# Content Security Policy (django-csp): no inline script, style or handler anywhere; the
# dashboards' behaviour lives in static/js/app.js and their looks in static/css/app.css.
from csp.constants import NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- REST API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "molam_upgrades.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["molam_upgrades.permissions.RolePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["molam_upgrades.api.parsers.SafeJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "molam_upgrades.api.negotiation.JSONOnlyNegotiation",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "molam_upgrades.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["molam_upgrades.throttling.PluginCredentialThrottle"],
    "DEFAULT_THROTTLE_RATES": {"plugin": env.str("PLUGIN_THROTTLE_RATE", default="600/min")},
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Molam safe upgrades API",
    "DESCRIPTION": "Safe plugin upgrades, automatic rollbacks and progressive rollouts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from the installed package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # In production the schema and its docs are for signed-in people and API credentials only.
    "SERVE_PERMISSIONS": [
        "rest_framework.permissions.AllowAny" if DEBUG else "rest_framework.permissions.IsAuthenticated"
    ],
    "SERVE_AUTHENTICATION": [
        "molam_upgrades.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # One name per choice set, so generated clients get one type per domain enum.
    "ENUM_NAME_OVERRIDES": {
        "BackupStatusEnum": "backups.choices.BackupStatus",
        "ReportedBackupStatusEnum": "backups.choices.REPORTED_STATUS_CHOICES",
        "UpgradeStatusEnum": "rollbacks.choices.UpgradeStatus",
        "RollbackStatusEnum": "rollbacks.choices.RollbackStatus",
        "RollbackEventStatusEnum": "rollbacks.choices.RollbackEventStatus",
        "RollbackTriggerEnum": "rollbacks.choices.RollbackTrigger",
        "RollbackProgressEnum": "rollbacks.choices.RollbackProgress",
        "RolloutStatusEnum": "rollouts.choices.RolloutStatus",
        "RolloutStrategyEnum": "rollouts.choices.RolloutStrategy",
        "VerdictEnum": "payments.choices.Verdict",
    },
}

# How long a resolved bearer token stays cached in-process (seconds). A revocation or rotation
# is seen at once by every process anyway (shared-cache generation, molam_upgrades/credentials.py).
API_TOKEN_CACHE_SECONDS = env.int("API_TOKEN_CACHE_SECONDS", default=30)
# 0: every request compares the shared revocation counter (a revocation bites everywhere at
# once; a copy kept true by Redis CLIENT TRACKING, no round trip). N > 0: each process reuses
# what it read for N seconds.
API_REVOCATION_CHECK_SECONDS = env.float("API_REVOCATION_CHECK_SECONDS", default=0)
# Upgrade reports received at the same moment share one statement and one commit (PostgreSQL;
# rollbacks.report_writer). A request waits at most REPORT_WRITE_TIMEOUT_S for its commit (503).
REPORT_GROUP_COMMIT = env.bool("REPORT_GROUP_COMMIT", default=True)
REPORT_WRITE_TIMEOUT_S = env.float("REPORT_WRITE_TIMEOUT_S", default=30)

# Base64 Ed25519 public key (the agent's release.public_key). When set, POST releases refuses
# unsigned releases and signatures that do not verify over the package (rollouts/signing.py).
RELEASE_SIGNING_PUBLIC_KEY = env.str("RELEASE_SIGNING_PUBLIC_KEY", default="")

# --- Celery ------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    # Embedded broker: a folder shared by the web process, the worker and beat.
    _broker_dir = VAR_DIR / "celery-broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(VAR_DIR / "celery-processed"),
        # Exchange tables (kombu's default is ./control, beside wherever the process started).
        "control_folder": str(VAR_DIR / "celery-control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "sira-auto-check": {
        "task": "rollouts.tasks.auto_check",
        "schedule": timedelta(minutes=5),
    },
    # Rollout plans: open the next stage of every healthy plan, inside its windows.
    "plan-advance": {
        "task": "plans.tasks.advance_plans",
        "schedule": timedelta(minutes=1),
    },
    # Housekeeping (docs/monitoring.md): each job is idempotent and safe to overlap.
    "retry-unsent-alerts": {
        "task": "molam_upgrades.tasks.retry_unsent_alerts",
        "schedule": timedelta(minutes=1),
    },
    "expire-backups": {
        "task": "backups.tasks.expire_backups",
        "schedule": crontab(minute=17, hour=3),
    },
    "purge-idempotency-records": {
        "task": "molam_upgrades.tasks.purge_idempotency_records",
        "schedule": crontab(minute=37, hour=3),
    },
    # Merchant notices: stages that selected registered merchants, then due deliveries.
    "notify-selected-merchants": {
        "task": "payments.tasks.notify_selected_merchants",
        "schedule": timedelta(minutes=1),
    },
    "send-due-merchant-notices": {
        "task": "merchants.tasks.send_due_notices",
        "schedule": timedelta(minutes=1),
    },
    "expire-rollback-approvals": {
        "task": "rollbacks.tasks.expire_rollback_approvals",
        "schedule": timedelta(minutes=1),
    },
}

# --- Alerts (PagerDuty Events API v2) -------------------------------------------------------
PAGERDUTY_EVENTS_URL = env.str("PAGERDUTY_EVENTS_URL", default="")
PAGERDUTY_ROUTING_KEY = env.str("PAGERDUTY_ROUTING_KEY", default="")
ALERT_SOURCE = env.str("ALERT_SOURCE", default="molam-upgrades")
ALERT_HTTP_TIMEOUT = env.float("ALERT_HTTP_TIMEOUT", default=5.0)

# --- Metrics -------------------------------------------------------------------------------
# Bearer token for /metrics; required in production (an anonymous /metrics shows the rollouts,
# their error rates and the request traffic to anyone).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="" if DEBUG else environ.Env.NOTSET)
# A scrape reads database aggregates at most this often (shared by every web worker).
METRICS_CACHE_SECONDS = env.int("METRICS_CACHE_SECONDS", default=10)
# /readyz fails when no Sira check finished within this many seconds (beat runs it every 5 min).
SIRA_MAX_AGE_SECONDS = env.int("SIRA_MAX_AGE_SECONDS", default=15 * 60)

# --- Retention -----------------------------------------------------------------------------
BACKUP_RETENTION_DAYS = env.int("BACKUP_RETENTION_DAYS", default=30)

# --- Payment canary analysis (payments/stats.py) ------------------------------------------
# One-sided tests at PAYMENT_CANARY_ALPHA; a canary fails only when significantly worse than its
# baseline by more than the margin (success rate: absolute, 0.01 = 1 point; latency: relative).
PAYMENT_CANARY_ALPHA = env.float("PAYMENT_CANARY_ALPHA", default=0.01)
PAYMENT_CANARY_SUCCESS_MARGIN = env.float("PAYMENT_CANARY_SUCCESS_MARGIN", default=0.01)
PAYMENT_CANARY_LATENCY_MARGIN = env.float("PAYMENT_CANARY_LATENCY_MARGIN", default=0.10)
PAYMENT_CANARY_MIN_MERCHANTS = env.int("PAYMENT_CANARY_MIN_MERCHANTS", default=10)
PAYMENT_CANARY_MIN_PAYMENTS = env.int("PAYMENT_CANARY_MIN_PAYMENTS", default=500)
PAYMENT_CANARY_WINDOW_HOURS = env.int("PAYMENT_CANARY_WINDOW_HOURS", default=24)

# --- Merchant notices (merchants/) and four-eyes rollbacks ----------------------------------
NOTICE_MAX_ATTEMPTS = env.int("NOTICE_MAX_ATTEMPTS", default=6)
NOTICE_RETRY_BASE_SECONDS = env.int("NOTICE_RETRY_BASE_SECONDS", default=30)
NOTICE_HTTP_TIMEOUT = env.float("NOTICE_HTTP_TIMEOUT", default=5.0)
# Webhooks to private/loopback addresses and local names (and http:// to loopback): local
# receivers in development and tests only; off in production (merchants/egress.py).
MERCHANT_WEBHOOK_ALLOW_PRIVATE = env.bool("MERCHANT_WEBHOOK_ALLOW_PRIVATE", default=DEBUG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Molam upgrades <upgrades@molam.example>")
# smtp://user:password@host:587 in production; the console backend prints mail by default.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
# A forced rollback of a high-value merchant waits this long for a second person's approval,
# and an approved one this long for the merchant's agent; after that it is never executed.
# Keep twice this below the agent's forced_rollback_max_age_s (24 h), counted from creation.
ROLLBACK_APPROVAL_TTL_HOURS = env.float("ROLLBACK_APPROVAL_TTL_HOURS", default=4)

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "molam_upgrades.logging.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "molam_upgrades.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Replaces Django's default DEBUG-only console handler, which would print every
        # django.* line a second time, unformatted; the lines reach the root handler instead.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
    },
}
# Keep this configuration in the Celery worker too: by default Celery replaces the root
# handlers with its own text format, and worker lines (alerts, Sira) would lose the JSON.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# WhiteNoise serves collected static files in production; in development it falls back to
# the app finders, and an empty STATIC_ROOT only means "nothing collected yet".
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
try:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
except OSError:
    pass
