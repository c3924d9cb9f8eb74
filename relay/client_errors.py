"""A client's mistake is one WARNING line at most, rate-limited, never a traceback.

:class:`ClientErrorLog` writes at most ``limit`` lines per ``window`` seconds;
the first line of the next window says how many were left out.  aiohttp gets
:class:`AiohttpLogger` as its ``logger``: its "Error handling request" for a
request its parser refused becomes such a line, with no traceback, while every
other exception it reports (a bug of ours) keeps its traceback at ERROR.

Connections ``relay.front`` handed to aiohttp are served by
:class:`GuardedHandler`.  aiohttp keeps each parse error with a traceback whose
frame holds the list holding the error and the bytes just read (up to 256 KiB):
a reference cycle that only the cyclic GC would free, and ``soaprelay serve``
runs that GC rarely (measured: 44 -> 580 MiB in 12 s of 1 MiB heads, kept).
The handler reads nothing more after a refused request and drops those
tracebacks, so each refusal is freed by reference counting the moment it is done.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["AiohttpLogger", "ClientErrorLog", "GuardedHandler"]

#: Lines per window, and the window, of the relay's client-error warnings.
DEFAULT_LIMIT = 10
DEFAULT_WINDOW = 10.0


class ClientErrorLog:
    """WARNING lines about clients' mistakes, at most ``limit`` per ``window`` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        limit: int = DEFAULT_LIMIT,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.limit, self.window, self.clock = logger, limit, window, clock
        self._window_start = -float("inf")
        self._written = 0
        self.suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        """Log ``message % args`` unless this window's lines are used up."""
        now = self.clock()
        if now - self._window_start >= self.window:
            if self.suppressed:
                message += " (and %d similar lines suppressed in the last %g s)"
                args = (*args, self.suppressed, self.window)
            self._window_start, self._written, self.suppressed = now, 0, 0
        if self._written >= self.limit:
            self.suppressed += 1
            return
        self._written += 1
        self.logger.warning(message, *args)


class AiohttpLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, with its reports of malformed requests made client errors."""

    def __init__(self, logger: logging.Logger, client_errors: ClientErrorLog) -> None:
        super().__init__(logger, {})
        self.client_errors = client_errors

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        error = _client_error(exc_info)
        if error is None:
            self.logger.error(msg, *args, exc_info=exc_info, **kwargs)
            return
        _forget_traceback(error)
        remote = args[0] if args else "?"
        if isinstance(error, HttpProcessingError):
            reason = " ".join(str(error.message).split())[:200]
            self.client_errors.warning("bad request from %s: %d %s", remote, error.code, reason)
        else:
            self.client_errors.warning("client %s went away mid-request: %s", remote, error)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        error = _client_error(kwargs.get("exc_info"))
        if error is not None:
            _forget_traceback(error)
            kwargs["exc_info"] = None
        self.logger.debug(msg, *args, **kwargs)


def _client_error(exc_info: Any) -> BaseException | None:
    """The client's error ``exc_info`` names, if it is one: a request aiohttp's parser
    refused, or a connection the client dropped while its request was handled."""
    if exc_info is True:
        exc_info = sys.exc_info()[1]
    if isinstance(exc_info, tuple):
        exc_info = exc_info[1]
    return exc_info if isinstance(exc_info, (HttpProcessingError, ConnectionError)) else None


def _forget_traceback(error: BaseException) -> None:
    """Break the cycle error -> traceback -> frame -> locals -> error."""
    error.__traceback__ = None
    error.__context__ = None


class GuardedHandler(web.RequestHandler):
    """aiohttp's connection handler, deaf after a request its parser refused."""

    __slots__ = ("_refused", "on_lost")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        #: Called once when the connection is lost (``relay.front`` counts connections).
        self.on_lost: Callable[[], None] | None = None

    def data_received(self, data: bytes) -> None:
        if not self._refused:  # past a parse error every read would queue another one
            super().data_received(data)

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            self._refused = True
        try:
            return super().handle_error(request, status, exc, message)
        finally:
            if isinstance(exc, HttpProcessingError):
                _forget_traceback(exc)

    def connection_lost(self, exc: BaseException | None) -> None:
        # Parse errors queued behind the one answered (aiohttp's ``_messages``) are
        # never handled: drop their tracebacks too.
        for message, _ in getattr(self, "_messages", ()):
            error = getattr(message, "exc", None)
            if isinstance(error, BaseException):
                _forget_traceback(error)
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()
        super().connection_lost(exc)
