"""deploy_v2 plus the upgrader its ``deploy.charge`` forgot: the fix a DLQ replay needs."""

from __future__ import annotations

from typing import Any

from tests.taskapps.deploy_v2 import app, charge

__all__ = ["app"]


@charge.upgrade(from_version=1)
def cents_to_money(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """v1 was ``charge(amount_cents)``; v2 takes ``Money``. Old payloads were in euros."""
    cents = kwargs.pop("amount_cents") if "amount_cents" in kwargs else args.pop(0)
    return [{"cents": cents, "currency": "EUR"}, *args], kwargs
