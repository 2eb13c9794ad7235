"""FastAPI, Flask and Django: a view that pushes into a full queue answers 429 with
``Retry-After``. Real framework apps and test clients, real Redis, a really full queue."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from relier import App, BrokerUnavailable
from relier.store import keys
from tests import web_views
from tests.conftest import ROOT
from tests.taskapps import web

LIMIT = 2


@pytest.fixture
async def full_queue(redis_url: str, rclient: redis.Redis) -> AsyncIterator[App]:
    """The web App, its ``emails`` queue limited to LIMIT and already holding LIMIT."""
    web.app.configure(redis_url=redis_url, queue_limits={web.QUEUE: LIMIT})
    web.send_email.push_many([((f"early{i}@example.com",), {}) for i in range(LIMIT)])
    assert waiting(rclient) == LIMIT
    yield web.app
    await web.app.aclose()
    web.app.close()
    web.app.configure(queue_limits={})


def waiting(client: redis.Redis) -> int:
    return sum(int(client.llen(name)) for name in keys.queue_lists(web.QUEUE))


def assert_rejected(status: int, headers: Any, body: dict[str, Any]) -> None:
    assert status == 429
    assert {k: body[k] for k in ("error", "queue", "depth", "limit", "reason")} == {
        "error": "admission_rejected", "queue": web.QUEUE, "depth": LIMIT, "limit": LIMIT,
        "reason": "depth",
    }
    assert body["retry_after"] > 0
    assert headers["Retry-After"] == str(max(1, math.ceil(body["retry_after"])))


# -- FastAPI ---------------------------------------------------------------------------

#: Starlette 1.x asks for `httpx2` in its test client; `httpx` still works.
starlette_httpx = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@starlette_httpx
def test_fastapi_answers_429_and_its_lifespan_wraps_the_users(
    full_queue: App, rclient: redis.Redis
) -> None:
    from fastapi.testclient import TestClient

    log: list[str] = []
    app = web_views.fastapi_app(log)
    with TestClient(app) as client:
        assert log == ["user startup"]
        assert full_queue._broker is not None  # opened on the server's loop at startup
        for path in ("/async/late@example.com", "/sync/late@example.com"):
            response = client.post(path)
            assert_rejected(response.status_code, response.headers, response.json())
        assert waiting(rclient) == LIMIT  # nothing was enqueued
        rclient.delete(*keys.queue_lists(web.QUEUE))  # room again
        accepted = client.post("/async/ok@example.com")
        assert accepted.status_code == 202 and accepted.json()["task_id"]
        assert client.post("/sync/ok@example.com").status_code == 202
        assert waiting(rclient) == 2
    assert log == ["user startup", "user shutdown"]
    # Shutdown closed both pools.
    assert full_queue._broker is None and full_queue._sync is None


@starlette_httpx
def test_fastapi_startup_fails_when_redis_is_required_and_unreachable(
    unreachable_app: App,
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import relier.integrations.fastapi

    app = FastAPI()
    relier.integrations.fastapi.register(app, unreachable_app, require_broker=True)
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:1"), TestClient(app):
        pass


def assert_unavailable(status: int, headers: Any, body: dict[str, Any]) -> None:
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert body["error"] == "broker_unavailable" and body["retry_after"] == 5
    assert "127.0.0.1" not in body["detail"]  # the broker's address stays in the log


@starlette_httpx
def test_fastapi_starts_degraded_and_answers_503_while_redis_is_down(
    down_web_app: App, caplog: pytest.LogCaptureFixture,
) -> None:
    from fastapi.testclient import TestClient

    with caplog.at_level("WARNING", "relier"), TestClient(web_views.fastapi_app()) as client:
        assert any("starting anyway" in r.getMessage() for r in caplog.records)
        for path in ("/async/a@example.com", "/sync/a@example.com"):
            response = client.post(path)
            assert_unavailable(response.status_code, response.headers, response.json())


def test_flask_answers_503_while_redis_is_down(down_web_app: App) -> None:
    response = web_views.flask_app().test_client().post("/sync/a@example.com")
    assert_unavailable(response.status_code, response.headers, response.get_json())


@pytest.fixture
def unreachable_app() -> App:
    return App(redis_url="redis://127.0.0.1:1/0")


@pytest.fixture
async def down_web_app() -> AsyncIterator[App]:
    """The web App pointed at a port where no Redis listens."""
    web.app.configure(redis_url="redis://127.0.0.1:1/0")
    yield web.app
    await web.app.aclose()
    web.app.close()


# -- Flask -----------------------------------------------------------------------------

def test_flask_answers_429(full_queue: App, rclient: redis.Redis) -> None:
    app = web_views.flask_app()
    assert app.extensions["relier"] == [full_queue]
    client = app.test_client()
    response = client.post("/sync/late@example.com")
    assert_rejected(response.status_code, response.headers, response.get_json())
    assert waiting(rclient) == LIMIT
    rclient.delete(*keys.queue_lists(web.QUEUE))
    assert client.post("/sync/ok@example.com").status_code == 202
    assert waiting(rclient) == 1


# -- Django ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def django_project() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="tests",
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF="tests.web_views",
            INSTALLED_APPS=["relier.integrations.django.RelierConfig"],
            MIDDLEWARE=["relier.integrations.django.AdmissionMiddleware"],
            DATABASES={},
            USE_TZ=True,
        )
        django.setup()


@pytest.fixture
def relier_settings(django_project: None, full_queue: App, redis_url: str) -> Iterator[None]:
    from django.test import override_settings

    with override_settings(RELIER={"APP": "tests.taskapps.web:app", "REDIS_URL": redis_url,
                                   "QUEUE_LIMITS": {web.QUEUE: LIMIT}}):
        yield


@pytest.mark.usefixtures("relier_settings")
def test_django_sync_view_answers_429(rclient: redis.Redis) -> None:
    from django.test import Client

    client = Client()
    response = client.post("/sync/late@example.com")
    assert_rejected(response.status_code, response.headers, response.json())
    assert waiting(rclient) == LIMIT
    rclient.delete(*keys.queue_lists(web.QUEUE))
    assert client.post("/sync/ok@example.com").status_code == 202
    assert waiting(rclient) == 1


@pytest.mark.usefixtures("relier_settings")
async def test_django_async_view_answers_429(rclient: redis.Redis) -> None:
    from django.test import AsyncClient

    client = AsyncClient()
    response = await client.post("/async/late@example.com")
    assert_rejected(response.status_code, response.headers, response.json())
    assert waiting(rclient) == LIMIT


def test_django_settings_configure_the_named_app(django_project: None, redis_url: str) -> None:
    from django.test import override_settings

    from relier.integrations.django import configure_from_settings

    other = f"{redis_url.rsplit('/', 1)[0]}/999"
    with override_settings(RELIER={"APP": "tests.taskapps.web:app", "redis_url": other,
                                   "QUEUE_LIMITS": {"x": 7}}):
        app = configure_from_settings()
    assert app is web.app
    assert app.settings.redis_url == other and app.settings.queue_limits == {"x": 7}
    web.app.configure(queue_limits={})


@pytest.mark.usefixtures("django_project")
def test_django_views_answer_503_while_redis_is_down(down_web_app: App) -> None:
    from django.test import Client, override_settings

    with override_settings(RELIER={"APP": "tests.taskapps.web:app",
                                   "REDIS_URL": "redis://127.0.0.1:1/0"}):
        response = Client().post("/sync/a@example.com")
    assert_unavailable(response.status_code, response.headers, response.json())


@pytest.mark.usefixtures("django_project")
async def test_django_async_views_answer_503_while_redis_is_down(down_web_app: App) -> None:
    from django.test import AsyncClient, override_settings

    with override_settings(RELIER={"APP": "tests.taskapps.web:app",
                                   "REDIS_URL": "redis://127.0.0.1:1/0"}):
        response = await AsyncClient().post("/async/a@example.com")
    assert_unavailable(response.status_code, response.headers, response.json())


def test_django_rejects_an_unknown_setting(django_project: None) -> None:
    from django.test import override_settings

    from relier import ConfigurationError
    from relier.integrations.django import configure_from_settings

    with override_settings(RELIER={"APP": "tests.taskapps.web:app", "REDIS_ULR": "x"}), \
            pytest.raises(ConfigurationError, match=r"redis_ulr.*did you mean 'redis_url'"):
        configure_from_settings()
    assert web.app.settings.redis_url  # the App was left as it was


# -- Without the framework -------------------------------------------------------------

@pytest.mark.parametrize(
    ("module", "hidden", "package"),
    [("fastapi", "starlette", "fastapi"), ("flask", "flask", "flask"),
     ("django", "django", "django")],
)
def test_a_missing_framework_says_what_to_install(module: str, hidden: str, package: str) -> None:
    code = (f"import sys; sys.modules[{hidden!r}] = None\n"
            "import relier\n"
            f"import relier.integrations.{module}\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert f"pip install {package}" in done.stderr
    # Relier itself never needs it.
    plain = subprocess.run([sys.executable, "-c", f"import sys; sys.modules[{hidden!r}] = None\n"
                            "import relier, relier.tasks, relier.cli"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
