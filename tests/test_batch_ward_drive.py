"""batch_drive's two ways of running a pump's blocking code as runner steps, without a pump:
replayed on the runner's thread (inline) and on a worker thread (on_worker). The steps are
driven by hand here, as ithcli.runner.Runner drives them (send the reply, or throw the error)."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from ithcli.batch_drive import StepClient, inline, on_worker
from ithcli.errors import LinkError
from ithcli.steps import Read
from protocol import bodies


def client() -> StepClient:
    return StepClient(SimpleNamespace(url="/dev/pts/test"), timeout=1.0)


def session() -> SimpleNamespace:
    return SimpleNamespace(role=None, serial=None, last_status=None, last_read_at=None, clock_skew_s=None)


def drive(job, replies):
    """Answer each ask in turn (an exception is thrown in); the asks, and the job's result."""
    asks = []
    try:
        ask = next(job)
        while True:
            asks.append(ask)
            reply = replies.pop(0)
            ask = job.throw(reply) if isinstance(reply, BaseException) else job.send(reply)
    except StopIteration as done:
        return asks, done.value


def test_inline_asks_each_exchange_once_and_the_code_sees_every_reply_in_order():
    c, runs, effects = client(), [], []

    def two_reads():
        runs.append(1)
        first = c.read(bodies.InterrogateRequest())
        second = c.read(bodies.ReadProgramRequest())
        effects.append((first, second))  # after the last exchange: done once
        return "done"

    status, program = object.__new__(bodies.Status), object.__new__(bodies.ReadProgramResponse)
    asks, result = drive(inline(two_reads, c, session()), [status, program])
    assert [type(a.body) for a in asks] == [bodies.InterrogateRequest, bodies.ReadProgramRequest]
    assert all(isinstance(a, Read) for a in asks)
    assert result == "done" and effects == [(status, program)]
    assert len(runs) == 3  # replayed once per exchange, the last run with every answer


def test_inline_throws_an_exchanges_error_at_the_same_place_on_every_replay():
    c, seen = client(), []

    def read_then_handle():
        try:
            c.read(bodies.InterrogateRequest())
        except LinkError as exc:
            seen.append(exc.message)
            return "handled"
        return "no error"

    asks, result = drive(inline(read_then_handle, c, session()), [LinkError("gone")])
    assert len(asks) == 1 and result == "handled" and seen == ["gone"]


def test_inline_sets_the_session_back_before_each_replay():
    c, s, roles = client(), session(), []

    def opens_then_reads():
        roles.append(s.role)
        c.read(bodies.InterrogateRequest())
        s.role = "reader"  # what a session learns between exchanges
        c.read(bodies.InterrogateRequest())
        return s.role

    _, result = drive(inline(opens_then_reads, c, s), [object.__new__(bodies.Status)] * 2)
    assert roles == [None, None, None] and result == "reader"


def test_a_replay_that_asks_another_exchange_than_recorded_is_refused():
    c, calls = client(), []

    def unstable():
        calls.append(1)
        c.read(bodies.InterrogateRequest() if len(calls) == 1 else bodies.ReadProgramRequest())
        c.read(bodies.InterrogateRequest())

    with pytest.raises(LinkError, match="internal error: a replay asked READ_PROGRAM"):
        drive(inline(unstable, c, session()), [object.__new__(bodies.Status)] * 2)


def test_on_worker_runs_the_code_on_another_thread_one_side_at_a_time():
    c, threads = client(), []

    def two_reads():
        threads.append(threading.current_thread())
        first = c.read(bodies.InterrogateRequest())
        threads.append(threading.current_thread())
        return first

    status = object.__new__(bodies.Status)
    asks, result = drive(on_worker(two_reads, c), [status])
    assert len(asks) == 1 and result is status
    assert threads[0] is threads[1] is not threading.main_thread()


def test_on_worker_throws_ctrl_c_into_the_code_at_its_pending_exchange():
    c, seen = client(), []

    def interrupted():
        try:
            c.read(bodies.InterrogateRequest())
        except KeyboardInterrupt:
            seen.append("interrupted at the read")
            raise

    with pytest.raises(KeyboardInterrupt):
        drive(on_worker(interrupted, c), [KeyboardInterrupt()])
    assert seen == ["interrupted at the read"]
