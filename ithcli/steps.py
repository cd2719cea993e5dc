"""A pump conversation as steps, sans-IO: what to send next, and what came back.

A step function is a generator. It yields an *ask* (Read, WriteOnce, or the handshake's
Hello and Auth) and is resumed with the typed reply, or has the error thrown into it at
that yield (the same ithcli errors PumpClient raises: ReplyLost, SessionLost,
DeviceRejected, PumpProtocolError... and KeyboardInterrupt), so a step's own
try/except decides what each failure means, as blocking code would. It returns its
result (StopIteration.value) or raises.

    def status_then_program():
        status = yield Read(bodies.InterrogateRequest())
        program = yield Read(bodies.ReadProgramRequest())
        return status, program

Two drivers run the same steps:

- drive(client, steps): one pump, blocking, through PumpClient (a Read is
  client.read, a WriteOnce client.write_once): the API's and the CLI's path.
- ithcli.runner.Runner: many pumps from one thread, each on its own link and
  ClientSession, their exchanges interleaved (poll over the links' descriptors).

A Read may be asked again by its driver (timeouts, corrupted frames) and, when its
answer was not authenticated, in a new session; a WriteOnce is sent exactly once.
"""
from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from protocol import Command, bodies

T = TypeVar("T")


@dataclass(frozen=True)
class Read:
    """A request that changes nothing on the pump: the driver may ask it again."""

    body: bodies.Request[Any]


@dataclass(frozen=True)
class WriteOnce:
    """A request that may change the pump (PREPARE_*, COMMIT): sent once, never again.
    No valid reply is ReplyLost thrown into the step; only a later read can settle it."""

    body: bodies.Request[Any]


@dataclass(frozen=True)
class Hello:
    """The handshake's HELLO for `role` ("reader" or "clinician"); answered by a
    protocol.session.HelloReply (its key_id names the key the pump holds)."""

    role: str


@dataclass(frozen=True)
class Auth:
    """The handshake's AUTH with `key` (never logged): answered by a SessionOpen. Sent once."""

    key: bytes


Ask = Read | WriteOnce | Hello | Auth
#: a step function's generator: yields asks, receives replies, returns T
Steps = Generator[Ask, Any, T]


def command_of(ask: Ask) -> Command:
    if isinstance(ask, Hello):
        return Command.HELLO
    if isinstance(ask, Auth):
        return Command.AUTH
    return ask.body.COMMAND


def drive(client: Any, steps: Steps[T]) -> T:
    """Run `steps` to the end over a blocking PumpClient; their result, or their error.

    Each ask is one client call, so the messages, retries and audit records are the
    client's own; an error (or Ctrl-C) during the call is thrown into the step at its
    yield, where the step's handlers turn it into an outcome."""
    try:
        ask = next(steps)
        while True:
            try:
                reply = _call(client, ask)
            except (Exception, KeyboardInterrupt) as exc:
                ask = steps.throw(exc)
            else:
                ask = steps.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result


def _call(client: Any, ask: Ask) -> Any:
    if isinstance(ask, Read):
        return client.read(ask.body)
    if isinstance(ask, WriteOnce):
        return client.write_once(ask.body)
    raise TypeError(f"{type(ask).__name__}: PumpClient opens its sessions itself (open_session)")


def interrogate() -> Steps[bodies.Status]:
    status: bodies.Status = yield Read(bodies.InterrogateRequest())
    return status


def read_program() -> Steps[bodies.ReadProgramResponse]:
    program: bodies.ReadProgramResponse = yield Read(bodies.ReadProgramRequest())
    return program


def read_whole_log(since_index: int = 0) -> Steps[tuple[int, list[bodies.Event]]]:
    """Every event from since_index (or the oldest still held) to the end, paged:
    the same pages as PumpClient.read_whole_log."""
    from protocol.messages import MAX_LOG_PAGE

    from .errors import PumpProtocolError

    events: list[bodies.Event] = []
    index = since_index
    oldest: int | None = None
    while True:
        page: bodies.ReadLogResponse = yield Read(bodies.ReadLogRequest(index, MAX_LOG_PAGE))
        if oldest is None:
            oldest = page.oldest_index
        batch = page.events
        for event in batch:
            if event.index < index:
                raise PumpProtocolError(
                    f"event log page out of order: got event {event.index} when asking from {index}"
                )
        events.extend(batch)
        if not batch:
            break
        index = batch[-1].index + 1
        if index >= page.event_count:
            break
    return oldest, events
