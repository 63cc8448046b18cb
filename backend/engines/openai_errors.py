"""Turns failures of OpenAI-compatible servers into clear, secret-free ``EngineError``s.

Shared by the chat and the speech engines. Messages name the server (without
any credentials in its URL) and say what to do; the API key never appears: it is
not interpolated anywhere, and server text that is quoted is scrubbed of it and
of anything that looks like a key.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import openai

from backend.engines.base import EngineError

OPENAI_DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
PLACEHOLDER_API_KEY: Final = "not-needed"
"""Sent to servers that need no key (llama.cpp, Ollama, vLLM without auth)."""

_MAX_QUOTED_CHARS: Final = 200
_KEY_LIKE = re.compile(r"\b(sk|key|api)[-_][A-Za-z0-9_\-*]{6,}", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)


def endpoint_for_display(base_url: str | None) -> str:
    """The base URL without user info, query or fragment (safe to show and log)."""
    url = base_url or OPENAI_DEFAULT_BASE_URL
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if not host:
        return "<invalid URL>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def host_for_display(base_url: str | None) -> str:
    parts = urlsplit(endpoint_for_display(base_url))
    return parts.netloc or "server"


def scrub(text: str, api_key: str) -> str:
    """Removes the key (and key-like tokens) from text quoted from a server."""
    if api_key and api_key != PLACEHOLDER_API_KEY and len(api_key) >= 4:
        text = text.replace(api_key, "***")
    text = _BEARER.sub(r"\1***", text)
    text = _KEY_LIKE.sub("***", text)
    text = " ".join(text.split())
    if len(text) > _MAX_QUOTED_CHARS:
        text = text[: _MAX_QUOTED_CHARS - 3] + "..."
    return text


def retry_after_seconds(headers: object) -> float | None:
    """Reads ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    millis = get("retry-after-ms")
    if isinstance(millis, str):
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = get("retry-after")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _server_message(exc: openai.APIError, api_key: str) -> str:
    message = exc.message
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            message = inner["message"]
        elif isinstance(body.get("detail"), str):
            message = body["detail"]
    return scrub(message or "", api_key)


def _connection_reason(exc: BaseException) -> str:
    """The most specific reason in the exception chain, e.g. ``Connection refused``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    deepest: BaseException = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return os.strerror(current.errno)
        deepest = current
        current = current.__cause__ or current.__context__
    return str(deepest) or type(deepest).__name__


def engine_error(
    exc: BaseException,
    *,
    service: str,
    base_url: str | None,
    model: str,
    api_key: str,
    key_setting: str,
    mid_reply: bool = False,
) -> EngineError:
    """Maps an openai (or httpx) exception to an ``EngineError`` the person can act on.

    ``service`` names the role ("language model", "speech"); ``key_setting`` names
    the setting that holds the key (e.g. ``llm.api_key``); ``mid_reply`` says that the
    answer had started streaming (a dropped link then reads as a broken-off reply).
    """
    where = endpoint_for_display(base_url)
    server = f"The {service} server at {where}"
    if isinstance(exc, EngineError):
        return exc
    # A stream that breaks off or stalls (issue 6): errors of the HTTP library while a body is read
    # are not wrapped by openai.
    failure = http_failure(exc)
    if (isinstance(exc, openai.APITimeoutError) or failure == "timeout") and mid_reply:
        return EngineError(f"{server} stopped answering in the middle of the reply; check that it is not overloaded.")
    if (isinstance(exc, openai.APIConnectionError) or failure == "transport") and mid_reply:
        reason = scrub(_connection_reason(exc), api_key)
        return EngineError(f"{server} broke off the reply: {reason}.")
    if failure == "timeout":
        return EngineError(f"{server} did not answer in time; check that it is running and not overloaded.")
    if failure is not None:
        reason = scrub(_connection_reason(exc), api_key)
        return EngineError(f"Cannot reach the {service} server at {where}: {reason}.")
    if isinstance(exc, openai.APITimeoutError):
        return EngineError(f"{server} did not answer in time; check that it is running and not overloaded.")
    if isinstance(exc, openai.APIConnectionError):
        reason = scrub(_connection_reason(exc), api_key)
        if _broke_off(exc):  # it answered, then dropped the connection mid-answer (issue 6)
            return EngineError(f"{server} broke off its answer: {reason}.")
        return EngineError(f"Cannot reach the {service} server at {where}: {reason}.")
    if isinstance(exc, openai.AuthenticationError):
        return EngineError(
            f"{server} rejected the API key (401): check {key_setting} or the OPENAI_API_KEY variable."
        )
    if isinstance(exc, openai.PermissionDeniedError):
        return EngineError(
            f"{server} refused access (403): the API key may not be allowed to use {model!r}; "
            f"check {key_setting}."
        )
    if isinstance(exc, openai.NotFoundError):
        return EngineError(
            f"{server} does not know the model {model!r} (404): check the model name and the base URL."
        )
    if isinstance(exc, openai.RateLimitError):
        wait = retry_after_seconds(exc.response.headers)
        detail = _server_message(exc, api_key)
        if "quota" in detail.lower() or exc.code == "insufficient_quota":
            return EngineError(f"{server} says the account is out of quota (429): {detail}")
        hint = f"try again in {wait:.0f} s" if wait is not None else "wait a moment and try again"
        return EngineError(f"{server} is rate limiting requests (429): {hint}.", retry_after_s=wait)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _server_message(exc, api_key)
        suffix = f": {detail}" if detail else "."
        if status >= 500:
            return EngineError(f"{server} failed with an internal error ({status}); try again later{suffix}")
        return EngineError(f"{server} refused the request ({status}){suffix}")
    if isinstance(exc, openai.APIError):
        detail = _server_message(exc, api_key)
        return EngineError(f"{server} stopped with an error mid-reply: {detail or 'no details given'}.")
    return EngineError(f"{server} failed: {scrub(str(exc) or type(exc).__name__, api_key)}.")


_HTTP_LIBRARIES: Final = ("httpx", "httpx2")


def http_failure(exc: BaseException) -> str | None:
    """"timeout", "transport" or "http" for an error of openai's HTTP library (httpx, or httpx2 in
    newer openai releases), None for anything else. Those errors escape openai while a body streams."""
    kinds = {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.split(".")[0] in _HTTP_LIBRARIES}
    if "TimeoutException" in kinds:
        return "timeout"
    if "TransportError" in kinds:
        return "transport"
    if kinds & {"HTTPError", "StreamError"}:
        return "http"
    return None


def is_provider_failure(exc: BaseException) -> bool:
    """An openai error, or an error of its HTTP library: both become an ``EngineError``."""
    return isinstance(exc, openai.OpenAIError) or http_failure(exc) is not None


def _broke_off(exc: BaseException) -> bool:
    """The exception chain holds the HTTP library's ``RemoteProtocolError`` (an answer cut short)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == "RemoteProtocolError":
            return True
        current = current.__cause__ or current.__context__
    return False
