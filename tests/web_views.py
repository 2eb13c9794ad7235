"""Views for the integration tests, one small app per framework, all pushing the same
task into the same (deliberately full) queue."""

from __future__ import annotations

from typing import Any

from tests.taskapps import web


def fastapi_app(lifespan_log: list[str] | None = None) -> Any:
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    import relier.integrations.fastapi

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        # The user's own lifespan: Relier's pools are open around it, so it can push.
        if lifespan_log is not None:
            lifespan_log.append("user startup")
        yield {"greeting": "hello"}
        if lifespan_log is not None:
            lifespan_log.append("user shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.post("/async/{to}", status_code=202)
    async def push_async(to: str) -> dict[str, str]:
        handle = await web.send_email.apush(to)
        return {"task_id": handle.id}

    @app.post("/sync/{to}", status_code=202)
    def push_sync(to: str) -> dict[str, str]:
        return {"task_id": web.send_email.push(to).id}

    relier.integrations.fastapi.register(app, web.app)
    return app


def flask_app() -> Any:
    from flask import Flask

    import relier.integrations.flask

    app = Flask(__name__)

    @app.post("/sync/<to>")
    def push_sync(to: str) -> tuple[dict[str, str], int]:
        return {"task_id": web.send_email.push(to).id}, 202

    relier.integrations.flask.register(app, web.app)
    return app


# -- Django: a URLconf module (ROOT_URLCONF = "tests.web_views") ------------------------

def django_sync_view(request: Any, to: str) -> Any:
    from django.http import JsonResponse

    return JsonResponse({"task_id": web.send_email.push(to).id}, status=202)


async def django_async_view(request: Any, to: str) -> Any:
    from django.http import JsonResponse

    handle = await web.send_email.apush(to)
    return JsonResponse({"task_id": handle.id}, status=202)


def _django_urls() -> list[Any]:
    try:
        from django.urls import path
    except ImportError:
        return []
    return [path("sync/<str:to>", django_sync_view), path("async/<str:to>", django_async_view)]


urlpatterns = _django_urls()
