"""Settings for the payment service, read from the environment (and `.env`) with django-environ.

With nothing set the service runs locally: SQLite, Celery eager, local-memory cache and the
simulator gateway. `.env.example` documents every variable.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.encryption import configured_keys, derived_key, parse_key

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

INSECURE_DEFAULT_SECRET_KEY = "django-insecure-local-development-key-do-not-use-in-production"  # noqa: S105
MIN_SECRET_KEY_LENGTH = 50

DEBUG = env.bool("DEBUG", default=True)


def _secret(name: str, default: str = "") -> str:
    """A secret from `NAME`, or from the file `NAME_FILE` names (Docker secrets), stripped; both set is an error."""
    path = env.str(f"{name}_FILE", default="")
    if path and env.str(name, default=""):
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {exc.strerror}") from exc
        if not value:
            raise ImproperlyConfigured(f"{name}_FILE={path} is empty.")
        return value
    return str(env.str(name, default=default))


# Every secret below is read through `_secret`: from NAME, or NAME_FILE (docker-compose `secrets:`, Kubernetes
# secret volumes). config/logging.py masks each one's value wherever it would show up in a log line.
SECRET_KEY = _secret("DJANGO_SECRET_KEY", default=INSECURE_DEFAULT_SECRET_KEY)
JWT_SIGNING_KEY = _secret("JWT_SIGNING_KEY") or SECRET_KEY


def _refuse_insecure_key(name: str, value: str) -> None:
    if value == INSECURE_DEFAULT_SECRET_KEY or value.startswith("django-insecure"):
        raise ImproperlyConfigured(f"{name} is the insecure default; set a random value of 50+ characters.")
    if len(value) < MIN_SECRET_KEY_LENGTH or len(set(value)) < 5:
        raise ImproperlyConfigured(f"{name} is too short or too simple; use 50+ random characters.")


if not DEBUG:
    _refuse_insecure_key("DJANGO_SECRET_KEY", SECRET_KEY)
    _refuse_insecure_key("JWT_SIGNING_KEY", JWT_SIGNING_KEY)

# Personal data at rest (config/encryption.py): AES-256-GCM keys, base64 of 32 bytes, newest first (the newest
# encrypts, every one listed decrypts: add the new key in front, run `manage.py rotate_encryption_key`, then drop
# the old one), and the blind index's own HMAC key (exact search by e-mail or IP; never rotated by that command).
# With DEBUG on and none set (make run, the tests) both are derived from SECRET_KEY; with DEBUG off the service
# refuses to start without them.
ENCRYPTION_KEYS = configured_keys(_secret("ENCRYPTION_KEYS"))
BLIND_INDEX_KEY = _secret("BLIND_INDEX_KEY")
if not DEBUG and not ENCRYPTION_KEYS:
    raise ImproperlyConfigured("ENCRYPTION_KEYS (or ENCRYPTION_KEYS_FILE) is required with DEBUG off.")
if not DEBUG and not BLIND_INDEX_KEY:
    raise ImproperlyConfigured("BLIND_INDEX_KEY (or BLIND_INDEX_KEY_FILE) is required with DEBUG off.")
ENCRYPTION_KEYS = ENCRYPTION_KEYS or [derived_key(SECRET_KEY, purpose="encryption")]
BLIND_INDEX_KEY = BLIND_INDEX_KEY or derived_key(SECRET_KEY, purpose="blind-index")
for _key in [*ENCRYPTION_KEYS, BLIND_INDEX_KEY]:
    parse_key(_key)  # refuse a malformed key at start, not at the first write

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "config.api.views.csrf_failure"  # the error envelope under /api/, Django's page elsewhere

INSTALLED_APPS = [
    "config.admin.apps.StaffAdminConfig",  # django.contrib.admin with the two-factor site (config/admin/site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",  # spent refresh tokens (config/api/auth.py)
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "auditlog",
    "django_otp",  # staff sign-in: a TOTP code after the password (config/admin/site.py)
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",  # backup codes
    "axes",  # lockout after repeated failed sign-ins
    # The house (docs/architecture.md), ground floor first; backoffice last (it composes the others' admin).
    "config",  # no models: its management commands (rotate_encryption_key walks every app's encrypted columns)
    "accounts",
    "events",
    "audit",
    "payments",
    "refunds",
    "customers",
    "subscriptions",
    "disputes",
    "risk",
    "webhooks",
    "reconciliation",
    "backoffice",
    "privacy",  # erasure and export of a customer, webhook payload retention: above every app it touches
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "config.middleware.RequestIdMiddleware",
    "config.middleware.ApiEdgeMiddleware",  # /api/: NUL in path or query -> 400; no-store; HEAD without a body
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from STATIC_ROOT, right after security
    "config.middleware.ApiBodyLimitMiddleware",
    "config.middleware.CardDataMiddleware",  # card data in an /api/ path, query, header or body: 400
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): the session passed the second factor
    "accounts.middleware.StaffSessionTimeoutMiddleware",  # idle and absolute limits of a signed-in session
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ApiExceptionMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "axes.middleware.AxesMiddleware",  # a locked-out sign-in answers the lockout page (AXES_LOCKOUT_TEMPLATE)
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
# The URL carries the database password: DATABASE_URL_FILE holds the whole URL.
DATABASES = {"default": env.db_url_config(_secret("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # services own their transactions
# Persistent connections (a new PostgreSQL backend per request costs more than most requests): each gunicorn
# thread and Celery worker thread keeps one, checked before reuse. Under PgBouncer (transaction mode) set
# DATABASE_CONN_MAX_AGE=0 and let PgBouncer pool (docs/architecture.md, "Connections").
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Server-side binding (values sent apart from the SQL, not quoted into it by psycopg), and psycopg prepares a
    # statement a connection has run DATABASE_PREPARE_THRESHOLD times, so PostgreSQL parses and plans the money
    # path's statements once per connection, not once per request (docs/architecture.md, "Connections"). Under
    # PgBouncer in transaction mode before 1.21 (max_prepared_statements), set DATABASE_PREPARE_THRESHOLD=0.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env.bool(
        "DATABASE_SERVER_SIDE_BINDING", default=True
    )
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = env.int("DATABASE_PREPARE_THRESHOLD", default=5) or None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Cache, broker -------------------------------------------------------------------------
REDIS_URL = _secret("REDIS_URL")  # a URL with a password (redis://:pw@host): REDIS_URL_FILE
# Every Redis client (the cache and so the rate limiter and the simulator's pool, the Celery broker) gives up on
# a connect or on any one read after these: a healthy Redis answers in well under a millisecond, and a frozen or
# partitioned one (connections accepted, nothing answered) must cost a request a bounded wait, not a hung thread.
REDIS_CONNECT_TIMEOUT_SECONDS = env.float("REDIS_CONNECT_TIMEOUT_SECONDS", default=1.0)
REDIS_SOCKET_TIMEOUT_SECONDS = env.float("REDIS_SOCKET_TIMEOUT_SECONDS", default=1.0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",  # Django's, with one client per pool (config/cache.py)
            "LOCATION": REDIS_URL,
            # redis-py pool kwargs; gateways/simulator/store.py builds its pool with the same ones.
            "OPTIONS": {
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = _secret("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes a worker's database connections before and after every task unless this is
# set (then only every 2 x this many tasks); the worker recycles them itself, as Django does around a
# request (`config.celery`: CONN_MAX_AGE, health checks), so a task does not open a new connection.
CELERY_DB_REUSE_MAX = 2**31
# A Redis broker through config/broker.py: kombu's transport, but a worker survives Redis going away mid-close.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
CELERY_BROKER_CONNECTION_TIMEOUT = 4.0  # an AMQP broker's connect and handshake (Redis: the options below)
# socket_timeout bounds each publish and each synchronous command (above the workers' 1 s BRPOP wait; their
# event loop has its own health check); max_retries/interval_* bound kombu's reconnects.
BROKER_SOCKET_TIMEOUT_SECONDS = env.float("BROKER_SOCKET_TIMEOUT_SECONDS", default=2.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
    "socket_timeout": BROKER_SOCKET_TIMEOUT_SECONDS,
    "visibility_timeout": 3600,
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Workers and beat (sweeps, retries) retry a failed publish a little; requests never do (config/tasks.py).
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# A request's enqueue (config/tasks.py): after a failed publish, this process skips publishing for this long
# (each skip logged) instead of making every request wait a socket timeout; the sweeps pick the work up.
TASKS_PUBLISH_PAUSE_SECONDS = env.float("TASKS_PUBLISH_PAUSE_SECONDS", default=5.0)
# Every task retries a lost database (django.db.OperationalError / InterfaceError: a restart, a failover, a
# terminated backend) with backoff and jitter, on a fresh connection (config/tasks.py, `db_retrying`).
TASKS_DB_MAX_RETRIES = env.int("TASKS_DB_MAX_RETRIES", default=10)
TASKS_DB_RETRY_BASE_SECONDS = env.float("TASKS_DB_RETRY_BASE_SECONDS", default=1.0)
TASKS_DB_RETRY_MAX_SECONDS = env.float("TASKS_DB_RETRY_MAX_SECONDS", default=60.0)

# --- Gateways -------------------------------------------------------------------------------
STRIPE_SECRET_KEY = _secret("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = _secret("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=10.0)
PAYMENTS_GATEWAY = env.str("PAYMENTS_GATEWAY", default="stripe" if STRIPE_SECRET_KEY else "simulator")
# How often a process rewrites the readiness probe's record of gateway calls that got an answer (gateways/registry.py).
GATEWAY_HEALTH_REFRESH_MS = env.int("GATEWAY_HEALTH_REFRESH_MS", default=1000)
PAYMENTS_SETTLE_MAX_RETRIES = env.int("PAYMENTS_SETTLE_MAX_RETRIES", default=8)
PAYMENTS_RETRY_BASE_SECONDS = env.float("PAYMENTS_RETRY_BASE_SECONDS", default=2.0)
PAYMENTS_RETRY_MAX_SECONDS = env.float("PAYMENTS_RETRY_MAX_SECONDS", default=300.0)
PAYMENTS_STUCK_AFTER_SECONDS = env.int("PAYMENTS_STUCK_AFTER_SECONDS", default=300)
# The risk check that payment_create calls through its port (payments/ports.py); payments.ports.AllowAll turns it off.
PAYMENTS_RISK_ASSESSOR = "risk.assessor.RulesAssessor"
# Saved payment methods (`pmt_…`) for payments: the customers app's implementation of payments.ports.SavedMethods.
PAYMENTS_SAVED_METHODS = "customers.charging.SavedMethodsForPayments"
# Whether a card may be saved (customers.ports.CardScreen): the risk app refuses blocklisted cards and customers.
CUSTOMERS_CARD_SCREEN = "risk.customers.BlocklistCardScreen"
# The simulator's answer time per gateway call, to model a real gateway in load tests (0: at once).
SIMULATOR_LATENCY_MS = env.int("SIMULATOR_LATENCY_MS", default=0)
REFUNDS_STUCK_AFTER_SECONDS = env.int("REFUNDS_STUCK_AFTER_SECONDS", default=300)
REFUNDS_SUBMIT_MAX_RETRIES = env.int("REFUNDS_SUBMIT_MAX_RETRIES", default=6)
REFUNDS_RETRY_BASE_SECONDS = env.float("REFUNDS_RETRY_BASE_SECONDS", default=2.0)
REFUNDS_RETRY_MAX_SECONDS = env.float("REFUNDS_RETRY_MAX_SECONDS", default=300.0)
# New refunds go to the gateway in batches (refunds.services.batch): one run this long after the first commit
# that created one, for all created meanwhile (0: a run per commit, no guard; the default where tasks run inline).
REFUNDS_SUBMIT_DELAY_MS = env.int("REFUNDS_SUBMIT_DELAY_MS", default=0 if CELERY_TASK_ALWAYS_EAGER else 100)
# Refunds a run claims per statement, and how many of their gateway calls it makes at once.
REFUNDS_SUBMIT_BATCH_SIZE = env.int("REFUNDS_SUBMIT_BATCH_SIZE", default=50)
REFUNDS_SUBMIT_CONCURRENCY = env.int("REFUNDS_SUBMIT_CONCURRENCY", default=8)
IDEMPOTENCY_KEY_TTL_HOURS = 24
IDEMPOTENCY_LOCK_TIMEOUT_SECONDS = env.int("IDEMPOTENCY_LOCK_TIMEOUT_SECONDS", default=90)

# Stripe webhooks: signature tolerance (both directions), largest body (the API limit applies first),
# processing retries, and the recovery task that reads Stripe's event list for events never delivered.
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=64 * 1024)
WEBHOOKS_PROCESS_MAX_RETRIES = env.int("WEBHOOKS_PROCESS_MAX_RETRIES", default=8)
WEBHOOKS_RETRY_BASE_SECONDS = env.float("WEBHOOKS_RETRY_BASE_SECONDS", default=2.0)
WEBHOOKS_RETRY_MAX_SECONDS = env.float("WEBHOOKS_RETRY_MAX_SECONDS", default=600.0)
# Stored events are processed by one drain task, run this long after the first commit that stored one, for all
# stored meanwhile (0: a drain per commit, no guard; the default where tasks run inline, as under `make run`).
WEBHOOKS_DRAIN_DELAY_MS = env.int("WEBHOOKS_DRAIN_DELAY_MS", default=0 if CELERY_TASK_ALWAYS_EAGER else 20)
# Rows the drain reads per query, and takes on per run (past it the drain sends itself again: a task time limit).
WEBHOOKS_DRAIN_BATCH_SIZE = env.int("WEBHOOKS_DRAIN_BATCH_SIZE", default=200)
WEBHOOKS_DRAIN_MAX_PER_RUN = env.int("WEBHOOKS_DRAIN_MAX_PER_RUN", default=1000)
WEBHOOKS_RECOVERY_INTERVAL_SECONDS = env.int("WEBHOOKS_RECOVERY_INTERVAL_SECONDS", default=300)
WEBHOOKS_RECOVERY_LOOKBACK_SECONDS = env.int("WEBHOOKS_RECOVERY_LOOKBACK_SECONDS", default=3600)
WEBHOOKS_RECOVERY_OVERLAP_SECONDS = env.int("WEBHOOKS_RECOVERY_OVERLAP_SECONDS", default=600)
WEBHOOKS_RECOVERY_STUCK_SECONDS = env.int("WEBHOOKS_RECOVERY_STUCK_SECONDS", default=300)
# Every periodic task of the project (run exactly one beat).
CELERY_BEAT_SCHEDULE = {
    "webhooks-recover-missed-events": {
        "task": "webhooks.tasks.recover_missed_events",
        "schedule": float(WEBHOOKS_RECOVERY_INTERVAL_SECONDS),
    },
    "outbox-relay-sweep": {"task": "events.tasks.relay_outbox", "schedule": 30.0},
    "payments-sweep-stuck": {"task": "payments.tasks.sweep_stuck_payments", "schedule": 60.0},
    "refunds-sweep-stuck": {"task": "refunds.tasks.sweep_stuck_refunds", "schedule": 60.0},
    "idempotency-keys-purge": {"task": "payments.tasks.purge_idempotency_keys", "schedule": 3600.0},
    "risk-sweep-reviews": {"task": "risk.tasks.sweep_reviews", "schedule": 900.0},
    "accounts-purge-expired-tokens": {"task": "accounts.tasks.purge_expired_tokens", "schedule": 3600.0},
    # Simulator only (a no-op on Stripe): the disputes it opens reach the inbox "moments later", as Stripe's do.
    "webhooks-deliver-simulator-events": {
        "task": "webhooks.tasks.deliver_simulator_events",
        "schedule": float(env.int("SIMULATOR_EVENTS_INTERVAL_SECONDS", default=5)),
        "options": {"expires": 30},
    },
    "disputes-warn-deadlines": {"task": "disputes.tasks.warn_dispute_deadlines", "schedule": 900.0},
    "privacy-purge-webhook-payloads": {
        "task": "privacy.tasks.purge_webhook_payloads",
        "schedule": 86400.0,
        "options": {"expires": 6 * 3600},
    },
}
# Raw webhook payloads older than this are reduced to their ids and outcome (docs/operations/personal-data.md).
WEBHOOK_PAYLOAD_RETENTION_DAYS = env.int("WEBHOOK_PAYLOAD_RETENTION_DAYS", default=90)

if PAYMENTS_GATEWAY not in {"stripe", "simulator"}:
    raise ImproperlyConfigured("PAYMENTS_GATEWAY must be 'stripe' or 'simulator'.")
if PAYMENTS_GATEWAY == "stripe" and not STRIPE_SECRET_KEY:
    raise ImproperlyConfigured("PAYMENTS_GATEWAY=stripe needs STRIPE_SECRET_KEY.")

# --- API ------------------------------------------------------------------------------------
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
# Rate limits (config/api/throttling.py; django-ratelimit syntax N/s, N/m, N/h, N/d, fixed windows): every
# /api/v1/ request of an API client counts as a read (GET, HEAD, OPTIONS) or a write, per client; the
# token endpoints per IP. The Stripe webhook is not limited. Fails open when the cache is unreachable.
RATELIMIT_WRITES = env.str("RATELIMIT_WRITES", default="6000/m")
RATELIMIT_READS = env.str("RATELIMIT_READS", default="12000/m")
RATELIMIT_TOKEN = env.str("RATELIMIT_TOKEN", default="10/m")
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "default"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["config.api.permissions.IsApiClient"],
    "DEFAULT_THROTTLE_CLASSES": ["config.api.throttling.ClientRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.JSONParser"],  # refuses NUL, lone surrogates, deep nesting
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.CursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.errors.api_exception_handler",
    "PAGE_SIZE": 20,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%SZ",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_ACCESS_TTL_SECONDS", default=900)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_REFRESH_TTL_SECONDS", default=86400)),
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "ALGORITHM": "HS256",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
    # config/api/auth.py: tokens only for API clients; refresh tokens single-use (rotated, the spent one
    # blacklisted); every token carries a digest of the password hash, so a password change refuses them all.
    "USER_AUTHENTICATION_RULE": "config.api.auth.api_client_can_authenticate",
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "CHECK_REVOKE_TOKEN": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Payment Service API",
    "DESCRIPTION": "Payments, refunds, events and Stripe webhooks. Amounts are integers in minor units.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # the webhook (a plain Django view), the envelope on the token endpoints, the payment flow's links
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.schema.postprocess",
    ],
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
}

# --- Security -------------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Admin (back office) sessions: a working day at most, and gone when the browser closes.
SESSION_COOKIE_AGE = env.int("ADMIN_SESSION_TTL_SECONDS", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# accounts/middleware.py: a signed-in session ends after this long without a request, and SESSION_COOKIE_AGE
# after its sign-in whatever the activity (Django's own expiry slides with every write of the session).
ADMIN_SESSION_IDLE_SECONDS = env.int("ADMIN_SESSION_IDLE_SECONDS", default=30 * 60)

# --- Staff sign-in (docs/operations/runbooks.md, "Staff sign-in") ----------------------------------
# Password (ModelBackend) behind django-axes: AxesStandaloneBackend first refuses a locked-out username + IP
# before any password is checked. Axes sees every authenticate(): the admin login and the API token endpoint.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # one username from one address: no lockout of others
AXES_RESET_ON_SUCCESS = True  # a successful sign-in (password and code) forgets the earlier failures
AXES_LOCKOUT_TEMPLATE = "accounts/lockout.html"  # answered with 429
AXES_VERBOSE = False  # no start-up banner on stdout (it would open every command's output); failures still logged
# The client address as the rest of the service sees it (REMOTE_ADDR: the rate limits, the audit trail);
# the proxy in front (gunicorn behind a load balancer) is expected to hand it over as the peer address.
AXES_CLIENT_IP_CALLABLE = "accounts.signin.client_ip"
# Cleansed from the request data axes stores and logs (the password always is).
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token", "otp_device", "csrfmiddlewaretoken"]
# TOTP (django-otp): the issuer an authenticator app shows; keys never shown in the admin.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Payment Service")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = False
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- I18N, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# whitenoise serves STATIC_ROOT; the image runs `collectstatic` at build (README, "Docker"). Without DEBUG the
# files are hashed (cached for ever) and gzipped; a file missing from the manifest is an error, so DEBUG=false
# needs `collectstatic` first. With DEBUG (local runs, the test suite) plain names from the app directories.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Fixed by DEBUG as the environment sets it (pytest-django turns settings.DEBUG off at run time only).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "config.logging.RequestIdFilter"},
        "mask_sensitive": {"()": "config.logging.SensitiveDataFilter"},
        "routine_task_lines": {"()": "config.logging.RoutineTaskLinesFilter"},
    },
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["request_id", "mask_sensitive"],
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "celery": {"level": "INFO"},
        # A task's "received" and "succeeded" lines are left out (config.logging.RoutineTaskLinesFilter).
        "celery.app.trace": {"level": "INFO", "filters": ["routine_task_lines"]},
        "celery.worker.strategy": {"level": "INFO", "filters": ["routine_task_lines"]},
    },
}
LOG_TASK_SUCCESS = env.bool("LOG_TASK_SUCCESS", default=False)

# --- Events outbox ---------------------------------------------------------------------------
EVENTS_BROKER_URL = _secret("EVENTS_BROKER_URL") or CELERY_BROKER_URL
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=500)
# The relay runs this long after the first commit that wrote events, for all that commit meanwhile (0: every commit).
OUTBOX_RELAY_DELAY_MS = env.int("OUTBOX_RELAY_DELAY_MS", default=100)
OUTBOX_MAX_PUBLISH_ATTEMPTS = env.int("OUTBOX_MAX_PUBLISH_ATTEMPTS", default=10)

# --- order.placed consumer (docs/order-placed.md) ----------------------------------------------
ORDERS_EXCHANGE = env.str("ORDERS_EXCHANGE", default="orders")
ORDERS_QUEUE = env.str("ORDERS_QUEUE", default="payments.order_placed")

# --- Back office (four-eyes) -------------------------------------------------------------------
# Staff refunds above this amount (minor units, per currency; "default" for the others) wait for a
# second staff member's approval. Every status override waits, whatever the amount.
BACKOFFICE_REFUND_APPROVAL_LIMIT: dict[str, int] = {"usd": 50000, "jpy": 50000, "kwd": 500000, "default": 50000}

# --- Reconciliation (reconciliation/tasks.py): yesterday, every day at 03:00 UTC ------------------
from celery.schedules import crontab  # noqa: E402 - kept next to the one entry that needs it

CELERY_BEAT_SCHEDULE["reconcile-daily"] = {
    "task": "reconciliation.tasks.reconcile_daily",
    "schedule": crontab(hour=3, minute=0),
    "options": {"expires": 6 * 3600},
}
