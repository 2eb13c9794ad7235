"""The example web apps run as documented: each pushes, and a burst gets 429s.

Each runs in a subprocess (they use the default App, configured from the environment,
and Django's settings are once per process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, StartWorker

BURST = """
import warnings
warnings.simplefilter("ignore")
from examples.web_tasks import send_welcome_email
{client}
codes = [post("/signup/u%d@example.com" % i) for i in range(25)]
# max_queue_depth=20 on send_welcome_email, and no worker drains it here.
assert codes == [202] * 20 + [429] * 5, codes
print("ok")
"""

CLIENTS = {
    "fastapi": """
from fastapi.testclient import TestClient
from examples.fastapi_app import app
client = TestClient(app).__enter__()
def post(path):
    return client.post(path).status_code
""",
    "flask": """
from examples.flask_app import app
client = app.test_client()
def post(path):
    return client.post(path).status_code
""",
}


def run(args: list[str], redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELIER_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("framework", sorted(CLIENTS))
def test_web_example_pushes_and_refuses_a_burst(framework: str, redis_url: str) -> None:
    done = run([sys.executable, "-c", BURST.format(client=CLIENTS[framework])], redis_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_django_example_project_starts(redis_url: str) -> None:
    manage = str(ROOT / "examples" / "django_project" / "manage.py")
    done = run([sys.executable, manage, "check"], redis_url)
    assert done.returncode == 0, done.stderr
    burst = run([sys.executable, "-c", f"""
import os, sys, runpy
sys.argv = [{manage!r}, "shell", "-c", '''
from django.test import Client
client = Client()
codes = [client.post("/signup/u%d@example.com" % i).status_code for i in range(22)]
assert codes == [202] * 20 + [429] * 2, codes
print("ok")
''']
runpy.run_path({manage!r}, run_name="__main__")
"""], redis_url)
    assert burst.returncode == 0, burst.stderr
    assert burst.stdout.strip().endswith("ok")


POLL = """
import time, warnings
warnings.simplefilter("ignore")
{client}
task_id = start("/reports?pages=8")
seen, deadline = [], time.monotonic() + 60
while time.monotonic() < deadline:
    body = get("/tasks/" + task_id)
    assert body["task_id"] == task_id, body
    seen.append(body["state"])
    if body["state"] == "SUCCESS":
        break
    time.sleep(0.05)
assert body == {{"task_id": task_id, "state": "SUCCESS", "result": {{"pages": 8}}}}, body
assert set(seen) <= {{"PENDING", "PROGRESS", "SUCCESS"}}, seen
assert "PROGRESS" in seen, seen
assert get("/tasks/no-such-id") == {{"task_id": "no-such-id", "state": "PENDING"}}
print("ok")
"""

POLL_CLIENTS = {
    "fastapi": """
from fastapi.testclient import TestClient
from examples.fastapi_app import app
client = TestClient(app).__enter__()
def start(path):
    response = client.post(path)
    assert response.status_code == 202
    return response.json()["task_id"]
def get(path):
    return client.get(path).json()
""",
    "flask": """
from examples.flask_app import app
client = app.test_client()
def start(path):
    response = client.post(path)
    assert response.status_code == 202
    return response.get_json()["task_id"]
def get(path):
    return client.get(path).get_json()
""",
}


BAD_ADD = {
    "flask": """
import json
from examples.flask_app import app
response = app.test_client().get("/add?x=two&y=3")
print(response.status_code, response.content_type, json.dumps(response.get_json()))
""",
    "fastapi": """
import json, warnings
warnings.simplefilter("ignore")
from fastapi.testclient import TestClient
from examples.fastapi_app import app
response = TestClient(app).__enter__().get("/add?x=two&y=3")
print(response.status_code, response.headers["content-type"], json.dumps(response.json()))
""",
}


@pytest.mark.parametrize("framework", sorted(POLL_CLIENTS))
def test_web_example_polls_a_task_it_started(
    framework: str, redis_url: str, start_worker: StartWorker
) -> None:
    start_worker("examples.web_tasks", queues="reports")
    done = run([sys.executable, "-c", POLL.format(client=POLL_CLIENTS[framework])], redis_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_django_example_polls_a_task_it_started(
    redis_url: str, start_worker: StartWorker
) -> None:
    start_worker("examples.web_tasks", queues="reports")
    manage = str(ROOT / "examples" / "django_project" / "manage.py")
    client = """
from django.test import Client
client = Client()
def start(path):
    response = client.post(path)
    assert response.status_code == 202
    return response.json()["task_id"]
def get(path):
    return client.get(path).json()
"""
    script = POLL.format(client=client)
    done = run([sys.executable, "-c", f"""
import sys, runpy
sys.argv = [{manage!r}, "shell", "-c", {script!r}]
runpy.run_path({manage!r}, run_name="__main__")
"""], redis_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


@pytest.mark.parametrize("framework", sorted(BAD_ADD))
def test_web_example_answers_a_bad_number_with_a_json_4xx(framework: str,
                                                          redis_url: str) -> None:
    done = run([sys.executable, "-c", BAD_ADD[framework]], redis_url)
    assert done.returncode == 0, done.stderr
    status, content_type, body = done.stdout.strip().split(" ", 2)
    assert status in ("400", "422") and content_type.startswith("application/json")
    assert "x" in body


def test_django_example_answers_a_bad_number_with_a_json_400(redis_url: str) -> None:
    manage = str(ROOT / "examples" / "django_project" / "manage.py")
    done = run([sys.executable, "-c", f"""
import sys, runpy
sys.argv = [{manage!r}, "shell", "-c", '''
from django.test import Client
response = Client().get("/add?x=two&y=3")
print(response.status_code, response["Content-Type"], response.json()["detail"])
''']
runpy.run_path({manage!r}, run_name="__main__")
"""], redis_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        "400 application/json x and y must be integers, as in /add?x=2&y=3")
