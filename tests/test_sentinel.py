"""Relier on Sentinel: the URL, clients that reach the master, and a real failover."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from relier import App
from relier.connections import parse_sentinel_url
from relier.errors import ConfigurationError
from relier.settings import Settings
from tests.conftest import StartWorker
from tests.polling import poll
from tests.taskapps import basic, failover
from tests.topologies import SentinelSetup


def test_a_sentinel_url_names_sentinels_service_database_and_passwords() -> None:
    target = parse_sentinel_url(
        "redis+sentinel://app:s3cret@10.0.0.1:26379,10.0.0.2/orders/3?sentinel_password=x")
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (target.service, target.db) == ("orders", 3)
    assert (target.username, target.password, target.sentinel_password) == ("app", "s3cret", "x")


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://h:26379", "no service name"),
    ("redis+sentinel://h:26379/svc/x", "/SERVICE or /SERVICE/DB"),
    ("redis+sentinel://h:99999/svc", "invalid port"),
    ("redis+sentinel://h:1/svc?master=x", "unknown option 'master'"),
])
def test_a_bad_sentinel_url_is_one_line_with_an_example(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.load({"redis_url": url})
    assert says in str(caught.value)
    assert "expected like redis+sentinel://" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_push_and_results_go_through_the_master(
        sentinel_setup: SentinelSetup, start_worker: StartWorker) -> None:
    url = sentinel_setup.url_for(5)
    basic.app.configure(redis_url=url)
    try:
        start_worker("tests.taskapps.basic:app", url=url)
        handle = basic.add.push(2, 3)
        assert handle.result(timeout=30) == 5
        assert await (await basic.add.apush(4, 5)).aresult(timeout=30) == 9
        master = redis.Redis(port=sentinel_setup.master_port(), db=5)
        try:
            assert master.exists("celery-task-meta-" + handle.id) == 1
            assert b"default" in master.smembers("relier:queues")  # the worker wrote here
        finally:
            master.close()
    finally:
        await basic.app.aclose()
        basic.app.close()
