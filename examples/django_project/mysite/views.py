"""Two views: one queues a task and answers at once, one waits for a result.

Sync views push with ``push()``. Under an ASGI server (uvicorn, daphne) async views can
``await task.apush()`` instead; under runserver/gunicorn (WSGI) every async view gets an
event loop of its own, so keep to ``push()`` there.
"""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from examples.web_tasks import add, build_report, send_welcome_email, task_status


@csrf_exempt
@require_POST
def signup(request: HttpRequest, address: str) -> JsonResponse:
    """Queue the welcome email and answer at once (429 when the queue is full)."""
    return JsonResponse({"task_id": send_welcome_email.push(address).id}, status=202)


@require_GET
def add_numbers(request: HttpRequest) -> JsonResponse:
    """Run `add` on a worker and wait for its result; 400 unless x and y are integers."""
    try:
        x, y = int(request.GET["x"]), int(request.GET["y"])
    except (KeyError, ValueError):
        return JsonResponse({"error": "bad_request",
                             "detail": "x and y must be integers, as in /add?x=2&y=3"},
                            status=400)
    return JsonResponse({"result": add.push(x, y).result(timeout=10)})


@csrf_exempt
@require_POST
def start_report(request: HttpRequest) -> JsonResponse:
    """Start a long task; the client keeps the id and polls ``tasks/<id>``."""
    handle = build_report.push(int(request.GET.get("pages", 10)))
    return JsonResponse({"task_id": handle.id}, status=202)


@require_GET
def status(request: HttpRequest, task_id: str) -> JsonResponse:
    """State and progress, result or error of any task, by id (PENDING if unknown)."""
    return JsonResponse(task_status(task_id))
