"""Flask: ``relier.integrations.flask.register(app)``.

* An error handler: a push that admission control refuses (``AdmissionRejectedError``)
  in a view becomes HTTP 429 with ``Retry-After`` and a JSON body (``queue``, ``depth``,
  ``limit``, ``retry_after``, ...).
* Another: a push while Redis is unreachable (``BrokerUnavailable``) becomes HTTP 503
  with ``Retry-After``.
* The Relier Apps' connection pools are closed when the process exits (Flask has no
  shutdown hook; ``atexit`` is the one that runs under ``flask run``, gunicorn and
  uwsgi alike). Between requests the pools are kept: that is what makes ``push`` cheap.

In views, push with ``task.push(...)`` (sync). Flask runs each ``async def`` view in
an event loop of its own, so a pool opened there by ``apush`` would not outlive the
request.

    app = Flask(__name__)
    relier.integrations.flask.register(app)            # the default App
    relier.integrations.flask.register(app, billing)   # or your own App(s)
"""

from __future__ import annotations

import atexit

from relier.app import App
from relier.errors import AdmissionRejectedError, BrokerUnavailable
from relier.integrations import common

try:
    from flask import Flask, Response, jsonify
except ImportError:  # pragma: no cover - exercised in a subprocess without the package
    raise common.missing("flask", "Flask") from None

__all__ = ["admission_rejected", "broker_unavailable", "register"]

#: The key under ``app.extensions`` holding the Relier Apps this Flask app uses.
EXTENSION: str = "relier"


def admission_rejected(error: AdmissionRejectedError) -> tuple[Response, int, dict[str, str]]:
    """The error handler: 429, ``Retry-After``, and the JSON body."""
    return jsonify(common.body(error)), common.STATUS, common.headers(error)


def broker_unavailable(error: BrokerUnavailable) -> tuple[Response, int, dict[str, str]]:
    """The error handler while Redis is unreachable: 503 and ``Retry-After``."""
    body, headers = common.unavailable(error)
    return jsonify(body), common.UNAVAILABLE_STATUS, headers


def register(app: Flask, *relier_apps: App) -> None:
    """Install the 429 and 503 handlers, and close the Relier Apps' pools when the process exits.

    ``relier_apps``: the Relier Apps used by the views (default: the default App of
    ``@rl_task``); they are listed in ``app.extensions["relier"]``.
    """
    apps = common.apps_or_default(relier_apps)
    app.register_error_handler(AdmissionRejectedError, admission_rejected)
    app.register_error_handler(BrokerUnavailable, broker_unavailable)
    app.extensions[EXTENSION] = apps
    atexit.register(close_pools, apps)


def close_pools(apps: list[App]) -> None:
    """Close the blocking connection pools of ``apps`` (registered to run at exit)."""
    for relier_app in apps:
        relier_app.close()
