"""The `on_access_request` callback of Sandbox and AsyncSandbox (docs/PERMISSIONS.md, "ask").

A watcher follows the sandbox's approvals stream and calls the callback once per pending access,
one at a time, in the order they arrive; what it returns (an AccessDecision, a Decision, True or
False/None) answers the access. A callback that raises denies it. The watcher reconnects when the
stream ends (a server restart, a sandbox stopped and started again) until it is stopped.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from typing import Any, Awaitable, Callable, Optional, Set, Union

from . import _common as c
from .exceptions import SandboxError
from .types import AccessDecision, AccessRequest, ApprovalState, Decision

log = logging.getLogger("agentfense")

AccessCallback = Callable[[AccessRequest], Any]
AsyncAccessCallback = Callable[[AccessRequest], Union[Awaitable[Any], Any]]

RECONNECT_DELAY = 0.5
ANSWERED_BY = "python sdk on_access_request"


def _decide(callback: AccessCallback, request: AccessRequest) -> AccessDecision:
    try:
        return c.to_decision(callback(request))
    except Exception:  # noqa: BLE001 - a failing callback must not leave the agent waiting
        log.exception("on_access_request raised for %s; the access is denied", request.path)
        return AccessDecision(Decision.DENY)


class AccessWatcher:
    """Answers a sandbox's access requests with `callback` on a background thread."""

    def __init__(self, client: Any, sandbox_id: str, callback: AccessCallback) -> None:
        self._client = client
        self._sandbox_id = sandbox_id
        self._callback = callback
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._seen: Set[str] = set()
        self._thread = threading.Thread(target=self._run, name=f"agentfense-ask-{sandbox_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                stream = self._client.watch_approvals(self._sandbox_id)
                with self._lock:
                    if self._stop.is_set():
                        stream.cancel()
                        return
                    self._stream = stream
                for req in stream:
                    if self._stop.is_set():
                        break
                    if req.state != ApprovalState.PENDING or req.id in self._seen:
                        continue
                    self._seen.add(req.id)
                    d = _decide(self._callback, req)
                    try:
                        self._client.answer_approval(self._sandbox_id, req.id, d, answered_by=ANSWERED_BY)
                    except SandboxError as e:  # answered, timed out or cancelled meanwhile
                        log.debug("answering %s: %s", req.id, e)
            except SandboxError as e:
                log.debug("approvals of %s: %s; reconnecting", self._sandbox_id, e)
            self._stop.wait(RECONNECT_DELAY)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                self._stream.cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


class AsyncAccessWatcher:
    """The same on the event loop: `callback` may be a coroutine function or a plain function."""

    def __init__(self, client: Any, sandbox_id: str, callback: AsyncAccessCallback) -> None:
        self._client = client
        self._sandbox_id = sandbox_id
        self._callback = callback
        self._seen: Set[str] = set()
        self._stream: Any = None
        self._stopped = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _decide(self, request: AccessRequest) -> AccessDecision:
        try:
            value = self._callback(request)
            if inspect.isawaitable(value):
                value = await value
            return c.to_decision(value)
        except Exception:  # noqa: BLE001
            log.exception("on_access_request raised for %s; the access is denied", request.path)
            return AccessDecision(Decision.DENY)

    async def _run(self) -> None:
        while not self._stopped:
            try:
                self._stream = self._client.watch_approvals(self._sandbox_id)
                async for req in self._stream:
                    if req.state != ApprovalState.PENDING or req.id in self._seen:
                        continue
                    self._seen.add(req.id)
                    d = await self._decide(req)
                    try:
                        await self._client.answer_approval(self._sandbox_id, req.id, d,
                                                           answered_by=ANSWERED_BY)
                    except SandboxError as e:
                        log.debug("answering %s: %s", req.id, e)
            except SandboxError as e:
                log.debug("approvals of %s: %s; reconnecting", self._sandbox_id, e)
            await asyncio.sleep(RECONNECT_DELAY)

    async def stop(self) -> None:
        self._stopped = True
        if self._stream is not None:
            self._stream.cancel()
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass


def check_callback(callback: Optional[Callable[..., Any]]) -> None:
    if callback is not None and not callable(callback):
        raise SandboxError(f"on_access_request must be callable, got {callback!r}")
