"""What the integrations share: the answers to a refused push, and which Apps they manage.

One answer for all frameworks: status 429, ``Retry-After`` in whole seconds (rounded up,
at least 1: RFC 9110 wants an integer), and a JSON body with the numbers behind it. When
Redis cannot be reached (``BrokerUnavailable``): status 503 with ``Retry-After``, a JSON
body that does not reveal the broker's address, and the full line in the server's log.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Final

from relier.app import App
from relier.errors import AdmissionRejectedError, BrokerUnavailable

STATUS: Final = 429
#: The answer while Redis is unreachable, and the wait it suggests (seconds).
UNAVAILABLE_STATUS: Final = 503
UNAVAILABLE_RETRY_AFTER_S: Final = 5
log = logging.getLogger("relier.web")


def retry_after_header(error: AdmissionRejectedError) -> str:
    """``Retry-After`` value: the suggested wait rounded up to whole seconds, at least 1."""
    return str(max(1, math.ceil(error.retry_after)))


def body(error: AdmissionRejectedError) -> dict[str, Any]:
    """The JSON body: what was full, how full, and when to come back (seconds, exact)."""
    return {
        "error": "admission_rejected",
        "detail": str(error),
        "queue": error.queue,
        "depth": error.depth,
        "limit": error.limit,
        "retry_after": error.retry_after,
        "reason": error.reason,
    }


def headers(error: AdmissionRejectedError) -> dict[str, str]:
    return {"Retry-After": retry_after_header(error)}


def unavailable(error: BrokerUnavailable) -> tuple[dict[str, Any], dict[str, str]]:
    """The 503 body and headers for an unreachable broker; logs the cause once per request."""
    log.warning("answering 503: %s", error)
    body = {"error": "broker_unavailable",
            "detail": "the task queue is unavailable; try again later",
            "retry_after": UNAVAILABLE_RETRY_AFTER_S}
    return body, {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)}


def missing(framework: str, package: str) -> ImportError:
    """The error raised when an integration's framework is not installed."""
    return ImportError(
        f"relier.integrations.{framework} needs {package}, which is not installed: "
        f"pip install {package.lower()}"
    )


def apps_or_default(relier_apps: Sequence[App]) -> list[App]:
    """The Apps given, or the default App that ``@rl_task`` registers with."""
    if relier_apps:
        return list(relier_apps)
    from relier.tasks import app as default_app

    return [default_app]
