"""Bodies as async iterators of byte chunks: the relay's small async generators.

They live here, in a module the accelerated build leaves in Python, because mypyc
2.4 compiles no async generator; the modules of the per-call path that hand bodies
around (``relay.pending``, ``relay.front_wire``, ``relay.http_senders``,
``relay.observe.call``) take them from here and compile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from relay.exceptions import MessageTooLarge

__all__ = ["chained", "limited", "no_chunks", "one_chunk", "watched"]


async def no_chunks() -> AsyncIterator[bytes]:
    """No body."""
    return
    yield b""  # pragma: no cover - makes this an async generator


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as one chunk; nothing at all when it is empty."""
    if data:
        yield data


async def chained(head: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks read already (``head``), then the rest of the stream."""
    for chunk in head:
        yield chunk
    async for chunk in rest:
        yield chunk


async def limited(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The sender's body in chunks, refusing to pass more than ``limit`` bytes."""
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise MessageTooLarge(f"the body is over this entity's limit of {limit} bytes")
        yield chunk


async def watched(
    chunks: AsyncIterator[bytes], each: Callable[[bytes], None], end: Callable[[], None]
) -> AsyncIterator[bytes]:
    """``chunks`` passed on, ``each`` told of every one before it goes and ``end`` after
    the last (not when the stream fails or is given up)."""
    async for chunk in chunks:
        each(chunk)
        yield chunk
    end()
