"""The SDK's listener against a relay played in memory (ControlChannel(Role.RELAY)), no socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hc.asyncio import (
    AuthorizationFailedError,
    HybridConnectionListener,
    QuotaExceededError,
    RelayedHttpListenerContext,
    SharedAccessSignatureTokenProvider,
)
from hc.asyncio.connection import MaskKeys
from hc.asyncio.exchange import RequestHandler
from hc.events import ConnectionClosed, RenewTokenReceived, ResponseReceived
from hc.messages import AcceptCommand, RequestCommand
from hc.protocol import ControlChannel
from hc.sas import SasToken
from tests.hc.asyncio.memory_relay import MemoryRelay, RelaySide


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def relay() -> MemoryRelay:
    return MemoryRelay()


@pytest.fixture
async def made() -> AsyncIterator[list[HybridConnectionListener]]:
    listeners: list[HybridConnectionListener] = []
    yield listeners
    for listener in listeners:
        await listener.close(timeout=1)


def make(relay: MemoryRelay, made: list[HybridConnectionListener], **options: object) -> HybridConnectionListener:
    provider = options.pop("token_provider", SharedAccessSignatureTokenProvider("Root", "key"))
    listener = HybridConnectionListener("http://relay.test/echo", provider,  # type: ignore[arg-type]
                                        connector=relay.connector, **options)  # type: ignore[arg-type]
    made.append(listener)
    return listener


async def online(relay: MemoryRelay, made: list[HybridConnectionListener],
                 handler: RequestHandler | None = None) -> tuple[HybridConnectionListener, RelaySide]:
    """A listener with ``handler`` as its request handler, open; and the relay's side of
    its control channel."""
    listener = make(relay, made)
    if handler is not None:
        listener.request_handler = handler
    await listener.open()
    return listener, await relay.next_socket()


async def shout(context: RelayedHttpListenerContext) -> None:
    context.response.headers.append(("X-Id", context.request.tracking_id))
    await context.response.write((await context.request.read()).upper())


def control_of(side: RelaySide) -> ControlChannel:
    assert isinstance(side.channel, ControlChannel)
    return side.channel


async def test_the_listen_handshake_carries_action_id_and_token(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    listener = make(relay, made, options=(("sb-relay-kind", "oneway"),))
    await listener.open()
    side = await relay.next_socket()
    assert side.path.startswith("/$hc/echo?")
    assert side.query["sb-hc-action"] == ["listen"]
    assert side.query["sb-hc-id"] == [listener.tracking_id]
    assert side.query["sb-relay-kind"] == ["oneway"]
    token = SasToken.parse(side.header("ServiceBusAuthorization") or "")
    assert token.resource.host == "relay.test" and listener.is_online


async def test_an_inline_request_is_answered_inline(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    _, side = await online(relay, made, shout)
    command = RequestCommand("ws://relay.test/$hc/echo?sb-hc-action=request&sb-hc-id=r1", "r1",
                             "/echo/a", "POST", (("Content-Type", "text/plain"),), True)
    control_of(side).send_request(command, b"quiet")
    side.flush()
    event = await side.next_event()
    assert isinstance(event, ResponseReceived)
    assert (event.command.request_id, event.command.status_code, event.body) == ("r1", 200, b"QUIET")
    assert ("X-Id", "r1") in event.command.response_headers


async def test_each_answer_leaves_as_soon_as_it_is_ready_in_order_tasks_done(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    _, side = await online(relay, made, shout)
    tasks_before = len(asyncio.all_tasks())
    arrivals: list[bytes] = []  # each write of the listener
    arrived = asyncio.get_running_loop().create_future()
    received = side.peer.data_received

    def count(data: bytes) -> None:
        arrivals.append(data)
        received(data)
        if not arrived.done():
            arrived.set_result(None)

    side.peer.data_received = count  # type: ignore[method-assign]
    control = control_of(side)
    for n in range(5):
        control.send_request(RequestCommand(f"ws://relay.test/$hc/echo?sb-hc-id=r{n}", f"r{n}",
                                            "/echo", "POST", (), True), b"call %d" % n)
    side.peer.write(b"".join(control.data_to_send()))  # all five in one read
    await arrived
    answers = [await side.next_event() for _ in range(5)]
    assert [(a.command.request_id, a.body) for a in answers if isinstance(a, ResponseReceived)] == [
        (f"r{n}", b"CALL %d" % n) for n in range(5)]
    # One write per answer, as soon as it is made (not put off to the end of the loop step
    # to go with the others: the relay starts on each at once) ...
    assert len(arrivals) == 5
    # ... and every call's task over once its answer is out (no done callback left).
    assert len(asyncio.all_tasks()) == tasks_before


async def test_without_a_request_handler_requests_get_501(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    await make(relay, made).open()
    side = await relay.next_socket()
    control_of(side).send_request(RequestCommand("ws://relay.test/x", "r2", "/echo", "GET", (), False))
    side.flush()
    event = await side.next_event()
    assert isinstance(event, ResponseReceived) and event.command.status_code == 501


async def test_a_refused_handshake_raises_the_named_error_from_open(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    relay.refuse(401, "TokenRejected", "bad signature")
    with pytest.raises(AuthorizationFailedError, match="bad signature") as caught:
        await make(relay, made).open()
    assert caught.value.status == 401 and caught.value.permanent
    relay.refuse(403, "QuotaExceeded", "listener quota")
    with pytest.raises(QuotaExceededError):
        await make(relay, made).open()


async def test_a_token_is_renewed_before_it_expires_on_an_injected_clock(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    clock = Clock()
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        clock.now += delay
        await asyncio.sleep(0)

    provider = SharedAccessSignatureTokenProvider("Root", "key", clock=clock)
    await make(relay, made, token_provider=provider, clock=clock, sleep=sleep).open()
    side = await relay.next_socket()
    first = SasToken.parse(side.header("ServiceBusAuthorization") or "")
    event = await side.next_event()
    assert isinstance(event, RenewTokenReceived)
    renewed = SasToken.parse(event.token)
    assert renewed.expiry > first.expiry
    assert waits[0] == pytest.approx(3600 * 0.8)


async def test_a_malformed_command_closes_the_channel_with_1008_and_the_listener_reconnects(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    reasons: list[BaseException | None] = []
    listener = make(relay, made, sleep=lambda _: asyncio.sleep(0))
    listener.connecting = reasons.append
    await listener.open()
    side = await relay.next_socket()
    side.peer.write(b"\x81\x05hello")  # an unmasked text frame: not JSON
    event = await side.next_event()
    assert isinstance(event, ConnectionClosed) and event.code == 1008
    again = await relay.next_socket()
    assert again.query["sb-hc-action"] == ["listen"]
    assert len(reasons) == 1 and "1008" in str(reasons[0])


async def test_close_answers_requests_arriving_meanwhile_with_503(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(context: RelayedHttpListenerContext) -> None:
        started.set()
        await release.wait()

    listener, side = await online(relay, made, slow)
    control = control_of(side)
    control.send_request(RequestCommand("ws://relay.test/a", "slow", "/echo", "GET", (), False))
    side.flush()
    await started.wait()
    closing = asyncio.get_running_loop().create_task(listener.close(timeout=5))
    await asyncio.sleep(0)
    control.send_request(RequestCommand("ws://relay.test/b", "late", "/echo", "GET", (), False))
    side.flush()
    late = await side.next_event()
    assert isinstance(late, ResponseReceived)
    assert (late.command.request_id, late.command.status_code) == ("late", 503)
    release.set()
    done = await side.next_event()
    assert isinstance(done, ResponseReceived) and done.command.request_id == "slow"
    closed = await side.next_event()
    assert isinstance(closed, ConnectionClosed) and closed.code == 1000
    await closing
    assert await listener.accept_connection() is None


def test_masking_keys_are_4_bytes_fresh_each_time_and_read_in_batches() -> None:
    keys = MaskKeys(batch=8)
    drawn = [keys() for _ in range(6)]
    assert all(len(key) == 4 for key in drawn)
    assert len(set(drawn)) > 1  # 6 draws of 32 random bits: equal only by a 1-in-2**32 chance each


async def test_senders_past_the_accept_backlog_are_refused_with_503(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    listener = make(relay, made, accept_backlog=2)
    await listener.open()
    side = await relay.next_socket()
    for n in range(3):
        control_of(side).send_accept(AcceptCommand(
            f"ws://relay.test/$hc/echo?sb-hc-action=accept&sb-hc-id=a{n}", f"a{n}"))
    side.flush()
    opened = [await relay.next_socket() for _ in range(3)]
    refused = [s.query for s in opened if "sb-hc-statusCode" in s.query]
    assert len(refused) == 1 and refused[0]["sb-hc-statusCode"] == ["503"]
    assert "Too many" in refused[0]["sb-hc-statusDescription"][0]
    taken = [await listener.accept_connection() for _ in range(2)]
    ids = {stream.tracking_id for stream in taken if stream is not None}
    assert ids | set(refused[0]["sb-hc-id"]) == {"a0", "a1", "a2"} and len(ids) == 2


async def test_close_closes_the_senders_nobody_accepted_and_accept_returns_none(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    listener, side = await online(relay, made)
    control_of(side).send_accept(AcceptCommand("ws://relay.test/$hc/echo?sb-hc-action=accept&sb-hc-id=w", "w"))
    side.flush()
    sender = await relay.next_socket()  # the listener joined it; nobody calls accept_connection()
    await asyncio.wait_for(listener.close(timeout=1), 5)
    closed = await sender.next_event()
    assert isinstance(closed, ConnectionClosed) and closed.code == 1001
    assert await listener.accept_connection() is None
    assert await listener.accept_connection() is None


async def test_a_rendezvous_cut_off_before_its_request_came_is_closed(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    """close() cuts off a call whose rendezvous socket is open but whose request has not
    come: that socket is closed too (before, it was left open, unclosed at the loop's end)."""
    listener, side = await online(relay, made, shout)
    control_of(side).send_request(RequestCommand("ws://relay.test/$hc/echo?sb-hc-id=r9", "r9"))
    side.flush()
    rendezvous = await relay.next_socket()  # opened; the relay sends nothing on it
    await listener.close(timeout=0.1)
    await asyncio.wait_for(rendezvous.peer.closed.wait(), 5)


async def test_a_close_cut_off_while_it_waits_for_the_peers_close_still_closes(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    """A stream's close() sends its Close and waits for the peer's; cancelled meanwhile
    (a task cut off, a loop ending), it closes the socket all the same."""
    listener, side = await online(relay, made)
    control_of(side).send_accept(AcceptCommand("ws://relay.test/$hc/echo?sb-hc-action=accept&sb-hc-id=c", "c"))
    side.flush()
    sender = await relay.next_socket()
    sender.flush = lambda: None  # type: ignore[method-assign]  # a peer that never answers
    stream = await listener.accept_connection()
    assert stream is not None
    closing = asyncio.get_running_loop().create_task(stream.close())
    assert isinstance(await sender.next_event(), ConnectionClosed)  # our Close arrived
    assert not closing.done()
    closing.cancel()
    await asyncio.wait_for(sender.peer.closed.wait(), 5)


async def test_a_streamed_answer_to_an_inline_request_cut_off_by_close_drops_its_socket(
    relay: MemoryRelay, made: list[HybridConnectionListener]
) -> None:
    """An inline request answered with more than 64 KiB streams its answer on a socket of
    its own; close() cutting the handler off mid-body drops that socket (the sender sees
    the answer break off) rather than leaving it open."""
    streaming = asyncio.Event()

    async def endless(context: RelayedHttpListenerContext) -> None:
        await context.response.write(b"x" * (70 * 1024))
        streaming.set()
        await asyncio.Event().wait()  # the rest of the body never comes

    listener, side = await online(relay, made, endless)
    control_of(side).send_request(RequestCommand("ws://relay.test/$hc/echo?sb-hc-id=s1", "s1",
                                                 "/echo", "GET", (), False))
    side.flush()
    rendezvous = await relay.next_socket()
    await asyncio.wait_for(streaming.wait(), 5)
    await listener.close(timeout=0.1)
    await asyncio.wait_for(rendezvous.peer.closed.wait(), 5)
