"""Django: ``AdmissionMiddleware`` (a refused push becomes HTTP 429) and ``settings.RELIER``.

In ``settings.py``::

    MIDDLEWARE = [..., "relier.integrations.django.AdmissionMiddleware"]
    # optional, so that management commands and the shell get the settings too:
    INSTALLED_APPS = [..., "relier.integrations.django.RelierConfig"]

    RELIER = {
        "APP": "myproject.tasks",        # module(s) to import, or "module:app" for your App
        "REDIS_URL": "redis://localhost:6379/0",
        "QUEUE_LIMITS": {"default": 10_000},
    }

Every key of ``RELIER`` but ``APP`` is an App setting (any case: ``REDIS_URL`` or
``redis_url``); values are Python values. ``APP`` names what ``relier worker -A`` would:
the modules are imported (their ``@rl_task`` functions register) and the App named after
a colon, or else the default App, gets the settings. They are applied when Django
starts (``RelierConfig.ready``) or when the middleware is built, whichever comes first,
and again only if ``RELIER`` changes (``override_settings`` in tests).

The middleware turns an ``AdmissionRejectedError`` raised by a view (sync or async)
into 429 with ``Retry-After`` and a JSON body (``queue``, ``depth``, ``limit``,
``retry_after``, ...), and a ``BrokerUnavailable`` (Redis unreachable) into 503 with
``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Any

from relier.app import App
from relier.errors import AdmissionRejectedError, BrokerUnavailable, ConfigurationError
from relier.integrations import common
from relier.loader import load_app
from relier.options import did_you_mean
from relier.settings import Settings

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.apps import AppConfig
    from django.conf import settings as django_settings
    from django.http import HttpRequest, HttpResponse, JsonResponse
except ImportError:  # pragma: no cover - exercised in a subprocess without the package
    raise common.missing("django", "Django") from None

__all__ = ["AdmissionMiddleware", "RelierConfig", "admission_rejected", "configure_from_settings"]

#: The App and the settings last applied to it, so that an unchanged ``RELIER`` does not
#: reset the App's connection pools.
_applied: dict[int, dict[str, Any]] = {}


def configure_from_settings() -> App:
    """Apply ``settings.RELIER`` to the App it names (or the default App); returns it.

    Raises :class:`~relier.ConfigurationError` for an unknown setting or a bad ``APP``.
    """
    raw = getattr(django_settings, "RELIER", None) or {}
    if not isinstance(raw, dict):
        raise ConfigurationError(f"settings.RELIER must be a dict, not {type(raw).__name__}")
    options = {str(key).lower(): value for key, value in raw.items()}
    target = options.pop("app", None)
    if target is not None and not isinstance(target, str):
        raise ConfigurationError("settings.RELIER['APP'] must be a string like 'proj.tasks:app'")
    unknown = sorted(set(options) - {f.name for f in fields(Settings)})
    if unknown:
        known = [f.name for f in fields(Settings)]
        raise ConfigurationError("settings.RELIER: unknown setting(s): " + ", ".join(
            f"{name}{did_you_mean(name, known)}" for name in unknown))
    app = load_app(target)
    if _applied.get(id(app)) != options:
        app.configure(**options)
        _applied[id(app)] = dict(options)
    return app


def admission_rejected(error: AdmissionRejectedError) -> HttpResponse:
    """429, ``Retry-After``, and the JSON body."""
    return JsonResponse(common.body(error), status=common.STATUS, headers=common.headers(error))


class AdmissionMiddleware:
    """Turns ``AdmissionRejectedError`` from a view into HTTP 429; works sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        configure_from_settings()
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self._is_async:
            return self._acall(request)
        response: HttpResponse = self.get_response(request)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = await self.get_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Django calls this with a view's exception; other errors pass through."""
        if isinstance(exception, AdmissionRejectedError):
            return admission_rejected(exception)
        if isinstance(exception, BrokerUnavailable):
            body, headers = common.unavailable(exception)
            return JsonResponse(body, status=common.UNAVAILABLE_STATUS, headers=headers)
        return None


class RelierConfig(AppConfig):  # type: ignore[misc]
    """Optional ``INSTALLED_APPS`` entry: applies ``settings.RELIER`` when Django starts."""

    name = "relier.integrations.django"
    label = "relier"
    verbose_name = "Relier"

    def ready(self) -> None:
        configure_from_settings()
