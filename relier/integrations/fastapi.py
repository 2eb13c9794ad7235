"""FastAPI (and Starlette): ``relier.integrations.fastapi.register(app)``.

``register`` does two things:

* an exception handler: a push that admission control refuses (``AdmissionRejectedError``,
  from ``apush``/``push``/``push_many`` anywhere in a request) becomes HTTP 429 with
  ``Retry-After`` and a JSON body (``queue``, ``depth``, ``limit``, ``retry_after``, ...);
* another: a push while Redis is unreachable (``BrokerUnavailable``) becomes HTTP 503
  with ``Retry-After``;
* a lifespan around the app's own (``FastAPI(lifespan=...)`` keeps working, inside it):
  at startup it opens each Relier App's connection pool on the server's event loop and
  checks that Redis answers; at shutdown, after the app's own shutdown code, it closes
  the pools.

The app **starts degraded** when Redis is down at startup: it logs one warning and
serves, its pushes answering 503 until Redis is back (a web app's other routes should
not go down with its task queue). ``require_broker=True`` makes such a startup fail
instead. A wrong URL (no scheme, a bad port) always fails the startup.

Call it once, after creating the app and before serving::

    app = FastAPI(lifespan=my_lifespan)
    relier.integrations.fastapi.register(app)            # the default App
    relier.integrations.fastapi.register(app, billing)   # or your own App(s)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from relier.app import App
from relier.config_errors import explain
from relier.errors import AdmissionRejectedError, BrokerUnavailable
from relier.integrations import common
from relier.store import server
from relier.store.errors import StoreError as RedisError

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
except ImportError:  # pragma: no cover - exercised in a subprocess without the package
    raise common.missing("fastapi", "FastAPI") from None

__all__ = ["admission_rejected", "broker_unavailable", "register"]
log = logging.getLogger("relier.web")


async def broker_unavailable(request: Request, error: Exception) -> Response:
    """The exception handler while Redis is unreachable: 503 and ``Retry-After``."""
    assert isinstance(error, BrokerUnavailable)
    body, headers = common.unavailable(error)
    return JSONResponse(body, status_code=common.UNAVAILABLE_STATUS, headers=headers)


async def admission_rejected(request: Request, error: Exception) -> Response:
    """The exception handler: 429, ``Retry-After``, and the JSON body."""
    assert isinstance(error, AdmissionRejectedError)
    return JSONResponse(common.body(error), status_code=common.STATUS,
                        headers=common.headers(error))


def register(
    app: Starlette, *relier_apps: App, check_broker: bool = True, require_broker: bool = False,
) -> None:
    """Install the 429 and 503 handlers and the lifespan that opens and closes Relier's
    pools.

    ``relier_apps``: the Relier Apps whose pools to manage (default: the default App of
    ``@rl_task``). ``check_broker=False`` skips the startup ping. An unreachable Redis at
    startup is a warning (the app starts degraded) unless ``require_broker=True``.
    """
    apps = common.apps_or_default(relier_apps)
    app.add_exception_handler(AdmissionRejectedError, admission_rejected)
    app.add_exception_handler(BrokerUnavailable, broker_unavailable)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        await _open(apps, check_broker, require_broker)
        try:
            async with inner(asgi_app) as state:
                yield state
        finally:
            for relier_app in apps:
                await relier_app.aclose()
                relier_app.close()

    app.router.lifespan_context = lifespan


async def _open(apps: Sequence[App], check: bool, required: bool) -> None:
    for relier_app in apps:
        broker = relier_app.broker()  # the pool of the server's loop
        if not check:
            continue
        try:
            await server.ping(broker.client)
        except (RedisError, OSError) as exc:
            error = explain(relier_app.settings.redis_url, exc) or exc
            if required or not isinstance(error, BrokerUnavailable):
                raise error from None
            log.warning("%s; starting anyway: pushes answer 503 until Redis is back", error)
