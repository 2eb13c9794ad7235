"""A minimal Django project that pushes Relier tasks (no database, no templates)."""

import os

DEBUG = True
SECRET_KEY = "example-only-not-secret"
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
ROOT_URLCONF = "mysite.urls"
USE_TZ = True
DATABASES: dict[str, dict[str, str]] = {}

INSTALLED_APPS = [
    # Applies RELIER below when Django starts (so `manage.py shell` gets it too).
    "relier.integrations.django.RelierConfig",
]
MIDDLEWARE = [
    # A view's AdmissionRejectedError becomes 429 + Retry-After.
    "relier.integrations.django.AdmissionMiddleware",
]

RELIER = {
    # Imported at startup, like `relier worker -A examples.web_tasks`.
    "APP": "examples.web_tasks",
    "REDIS_URL": os.environ.get("RELIER_REDIS_URL", "redis://localhost:6379/0"),
}
