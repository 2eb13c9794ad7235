"""Celery's remote control for a Relier worker: ``celery inspect ping|active|...``,
``app.control.revoke(...)`` and Flower's worker pages and controls.

A service in the worker's task group. It subscribes (its own connection) to the pidbox
fanout channel ``/<db>.celery.pidbox`` (and ``/<db>.celery.pidbox/*``, kombu's form with
a routing key), and for each request addressed to this worker (``destination``, or a
``pattern``; none means all) that has not expired:

1. parses it (:mod:`relier.protocol.pidbox`; every byte is hostile: a malformed
   message is logged with its reason and dropped);
2. runs the command (:mod:`relier.runtime.control_commands`); a command this worker
   does not support is logged once by name and, when the client waits for a reply,
   answered with an error reply naming it;
3. LPUSHes the reply to the client's reply queue, as a Celery worker does.

Nothing a request contains can stop the worker: any error of one request is logged and
the service goes on; a Redis error reconnects after a pause.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import anyio

from relier.protocol import pidbox
from relier.runtime.control_commands import NO_REPLY, Handler, WorkerFacts, handlers
from relier.store import control as control_store
from relier.store.broker import REDIS_ERRORS
from relier.store.clients import AsyncClient

log = logging.getLogger("relier.control")

#: Seconds between reconnection attempts after a Redis error.
RECONNECT_S: Final = 1.0


class ControlService:
    """Answers remote-control requests for one worker."""

    def __init__(self, client: AsyncClient, facts: WorkerFacts) -> None:
        self._client = client
        self.facts = facts
        self._handlers: dict[str, Handler] = handlers(facts)
        self._unsupported: set[str] = set()
        self._channel = control_store.pidbox_channel(client)
        #: Set once the subscription is in place (tests and the worker's start wait on it).
        self.listening = anyio.Event()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after Redis errors."""
        try:
            while True:
                try:
                    await self._listen()
                except REDIS_ERRORS as exc:
                    # The fetch loops report the outage once for the whole worker.
                    log.debug("remote control: lost Redis (%s); reconnecting", exc)
                await anyio.sleep(RECONNECT_S)
        finally:
            with anyio.CancelScope(shield=True):
                await self.aclose()

    async def aclose(self) -> None:
        """Close the service's own connection."""
        await self._client.aclose()

    async def _listen(self) -> None:
        async with control_store.listen_pidbox(self._client) as listener:
            # Revocations written while we were not listening are read after subscribing,
            # so none falls between the two.
            await self.facts.revoked.refresh(self._client)
            if not self.listening.is_set():
                log.debug("remote control: listening on %s as %s", self._channel,
                          self.facts.hostname)
            self.listening.set()
            while True:
                data = await listener.next()
                if data is not None:
                    await self.handle(data)

    async def handle(self, raw: bytes) -> None:
        """One published request, start to reply; never raises (but cancellation)."""
        try:
            await self._handle(raw)
        except REDIS_ERRORS as exc:
            log.warning("remote control: could not answer a request (%s)", exc)
        except Exception:
            log.exception("remote control: a request failed; ignoring it")

    async def _handle(self, raw: bytes) -> None:
        try:
            request = pidbox.parse_request(raw)
        except pidbox.BadControlMessage as exc:
            log.warning("remote control: ignoring a malformed message: %s", exc)
            return
        if not request.addressed_to(self.facts.hostname) or request.expired(time.time()):
            return
        self.facts.clock = max(self.facts.clock, request.clock) + 1
        answer = await self._dispatch(request)
        if answer is NO_REPLY or request.reply_to is None:
            return
        envelope = pidbox.reply(self.facts.hostname, answer, request, self.facts.clock)
        if not await control_store.push_reply(self._client, request.reply_to.exchange,
                                              request.reply_to.routing_key, envelope):
            log.debug("remote control: the client of %r is gone; reply dropped",
                      request.method)

    async def _dispatch(self, request: pidbox.ControlRequest) -> Any:
        handler = self._handlers.get(request.method)
        if handler is None:
            return self._refuse(request.method)
        try:
            return await handler(request.arguments)
        except REDIS_ERRORS:
            raise
        except Exception as exc:
            log.exception("remote control: %s failed", request.method)
            return pidbox.error(f"{request.method} failed: {type(exc).__name__}: {exc}")

    def _refuse(self, method: str) -> dict[str, str]:
        text = f"relier does not support the remote control command {method!r}"
        if method not in self._unsupported:
            self._unsupported.add(method)
            log.warning("remote control: %s (logged once; answered with an error)", text)
        return pidbox.error(text)
