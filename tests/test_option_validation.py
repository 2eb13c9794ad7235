"""Bad task options and push options are refused before anything is sent, with a line
that names the option, the value and what it should be ("did you mean" for a typo)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from relier import App, ArgumentError, ConfigurationError
from relier.store import keys


@pytest.fixture
def app(redis_url: str) -> Any:
    relier_app = App(redis_url=redis_url)
    yield relier_app
    relier_app.close()


def charge_task(app: App) -> Any:
    @app.task(name="billing.charge")
    def charge(amount_cents: int) -> None: ...

    return charge


@pytest.mark.parametrize("options, message", [
    ({"countdwn": 30}, "unknown option 'countdwn' (did you mean 'countdown'?)"),
    ({"countdown": "30"}, "countdown must be a number of seconds, got '30' (str)"),
    ({"countdown": -5}, "countdown must be >= 0 seconds, got -5"),
    ({"eta": "tomorrow"}, "eta must be a datetime"),
    ({"expires": "soon"}, "expires (seconds, or a datetime) must be a number of seconds, "
                          "got 'soon'"),
    ({"hard_timeout": "10"}, "hard_timeout must be a number of seconds, got '10' (str)"),
    ({"queue": 5}, "queue must be a non-empty string, got 5"),
    ({"priority": 99}, "priority must be an int from 0 (first) to 9, got 99"),
    ({"countdown": 5, "eta": datetime.now(UTC)}, "give countdown or eta, not both"),
])
def test_bad_push_options_are_refused_clearly(app: App, rclient: redis.Redis,
                                              options: dict[str, Any], message: str) -> None:
    charge = charge_task(app)
    with pytest.raises(ConfigurationError) as caught:
        charge.options(**options).push(100)
    assert message in str(caught.value)
    assert "billing.charge" in str(caught.value)
    assert isinstance(caught.value, TypeError)  # what the wrong call used to raise
    assert rclient.llen("default") == 0


def test_good_options_still_push(app: App, rclient: redis.Redis) -> None:
    charge = charge_task(app)
    charge.options(countdown=0, priority=9, queue="default", expires=30).push(1)
    charge.options(eta=datetime.now(UTC) + timedelta(hours=1), expires=datetime.now(UTC)
                   + timedelta(hours=2)).push(2)
    assert rclient.zcard(keys.delayed("default")) == 1
    assert sum(rclient.llen(name) for name in keys.queue_lists("default")) == 1


def test_a_typo_in_a_task_option_suggests_the_name(app: App) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown option 'retires' \(did you mean "
                                                  r"'retries'\?\)"):
        @app.task(retires=3)
        def job() -> None: ...


def test_with_options_is_checked_too(app: App) -> None:
    charge = charge_task(app)
    with pytest.raises(ConfigurationError, match="priority must be an int"):
        charge.options(queue="default").with_options(priority=-1)


def test_push_names_the_stray_keyword_and_the_missing_one(app: App,
                                                         rclient: redis.Redis) -> None:
    charge = charge_task(app)
    with pytest.raises(ArgumentError) as caught:
        charge.push(amount=1)  # type: ignore[call-arg]
    text = str(caught.value)
    assert "missing a required argument: 'amount_cents'" in text
    assert "unexpected keyword argument 'amount' (did you mean 'amount_cents'?)" in text
    with pytest.raises(ArgumentError, match=r"^billing\.charge\(\): unexpected keyword "
                                            r"argument 'amount' \(did you mean"):
        charge.push(1, amount=1)  # type: ignore[call-arg]
    assert rclient.llen("default") == 0
