"""A language model behind any OpenAI-compatible chat completions endpoint.

Works with OpenAI itself and with local servers (llama.cpp server, Ollama, vLLM,
LM Studio). A server that needs no key gets a placeholder so the client can be
built. Failures become ``EngineError``s with actionable, secret-free messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Final

import openai

from backend.config import LLMConfig, resolved_api_key, resolved_base_url
from backend.engines.base import ChatMessage, EngineError, ProgressCallback
from backend.engines.openai_errors import (
    PLACEHOLDER_API_KEY,
    endpoint_for_display,
    engine_error,
    host_for_display,
    is_provider_failure,
)

log = logging.getLogger("parley.engines.llm")

PROBE_TIMEOUT_S: Final = 3.0
"""The start-up reachability check never delays loading longer than this."""


class OpenAIChatLLM:
    """An ``LLMEngine`` streaming chat completions from an OpenAI-compatible server."""

    def __init__(self, config: LLMConfig) -> None:
        self._config = config
        self._base_url = resolved_base_url(config.base_url)
        self._api_key = resolved_api_key(config.api_key)
        self._client: openai.AsyncOpenAI | None = None

    @property
    def name(self) -> str:
        return f"{self._config.model} ({host_for_display(self._base_url)})"

    async def load(self, progress: ProgressCallback) -> None:
        """Builds the client and checks (briefly, without failing) that the server answers.

        Raises ``EngineError`` only for settings that cannot work (no model name, or
        OpenAI itself without a key). An offline server is logged, not fatal.
        """
        if not self._config.model.strip():
            raise EngineError("No language model name is set: put the server's model name in llm.model.")
        if self._base_url is None and not self._api_key:
            raise EngineError(
                "OpenAI needs an API key: set llm.api_key or the OPENAI_API_KEY variable, "
                "or point llm.base_url at a local OpenAI-compatible server."
            )
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or PLACEHOLDER_API_KEY,
                base_url=self._base_url,
                timeout=self._config.timeout_s,
                max_retries=0,
            )
        progress(f"Connecting to {endpoint_for_display(self._base_url)}", None)
        await self._probe(self._client)

    async def _probe(self, client: openai.AsyncOpenAI) -> None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await client.with_options(timeout=PROBE_TIMEOUT_S).models.list()
        except openai.OpenAIError as exc:
            log.warning("language model server check: %s", self._error(exc, quiet=True).user_message)
        except TimeoutError:
            log.warning("language model server check: no answer within %.0f s", PROBE_TIMEOUT_S)
        else:
            log.info("language model server %s answers", endpoint_for_display(self._base_url))

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """Yields reply text as the server streams it.

        Closing the stream or cancelling the consumer closes the HTTP response at
        once. Raises ``EngineError`` on any provider failure, before or mid-reply.
        """
        client = self._client
        if client is None:
            raise EngineError("The language model is not loaded.")
        payload: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        try:
            chunks = await client.chat.completions.create(
                model=self._config.model,
                messages=payload,
                stream=True,
                max_tokens=self._config.max_tokens,
                temperature=self._config.temperature,
            )
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        finished = False
        try:
            async with chunks:
                async for chunk in chunks:
                    if not chunk.choices:
                        continue
                    finished = finished or bool(chunk.choices[0].finish_reason)
                    text = chunk.choices[0].delta.content
                    if text:
                        yield text
        except Exception as exc:
            if not is_provider_failure(exc):
                raise
            raise self._error(exc, mid_reply=True) from None
        if not finished:  # the body ended before the reply did (issue 6): never pass a cut reply off as whole
            where = endpoint_for_display(self._base_url)
            error = EngineError(f"The language model server at {where} ended its answer in the middle of the reply.")
            log.warning("%s", error.user_message)
            raise error

    def _error(self, exc: BaseException, *, quiet: bool = False, mid_reply: bool = False) -> EngineError:
        error = engine_error(
            exc,
            service="language model",
            base_url=self._base_url,
            model=self._config.model,
            api_key=self._api_key,
            key_setting="llm.api_key",
            mid_reply=mid_reply,
        )
        if not quiet:
            log.warning("%s", error.user_message)
        return error

    async def aclose(self) -> None:
        """Closes the HTTP connections; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
