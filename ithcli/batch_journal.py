"""A batch run's records: its journal (what ran, step by step, on disk) and its reports.

Split out of batch.py. The journal is append-only JSON lines, each fsync'd before the step
goes on: created, sent (before COMMIT goes out), then confirmed, failed or unconfirmed. A
re-run with the same journal resumes from it (batch.Runner); a torn last line (a crash
mid-write) never counted and is set aside, never merged.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import IthcliError
from .plan import Target


def plan_hash(plan_path: str) -> str:
    return hashlib.sha256(Path(plan_path).read_bytes()).hexdigest()[:16]


class Journal:
    """Append-only JSON lines; a torn last line (a crash mid-write) is ignored, never merged."""

    def __init__(self, path: str, plan_id: str):
        self.path = Path(path)
        self.plan_id = plan_id
        self._lock = threading.Lock()

    def last_states(self) -> dict[tuple[str, int], dict]:
        """(target serial, step number) -> the last record, for this plan."""
        states: dict[tuple[str, int], dict] = {}
        if not self.path.exists():
            return states
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1] != b"":
            lines = lines[:-1]  # torn: the write never completed, so it never counted
        for raw in lines:
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                raise IthcliError(f"batch journal {self.path} has a damaged line: refusing to guess what ran") from None
            if record.get("plan") != self.plan_id:
                continue
            states[(record["serial"], record["step"])] = record
        return states

    def write(self, **record) -> None:
        from .output import jsonable

        line = json.dumps(jsonable({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                    "plan": self.plan_id, **record}), sort_keys=True, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._set_aside_torn_tail()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    def _set_aside_torn_tail(self) -> None:
        """A torn last line (a crash mid-write) never counted: move it to a side file
        (PATH.torn-TIME) and cut it off, so it is neither glued to the next record nor
        left behind as a damaged line in the middle of the journal."""
        if not self.path.exists() or not self.path.stat().st_size:
            return
        with open(self.path, "r+b") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            fh.seek(0)
            data = fh.read()
            keep = data.rfind(b"\n") + 1
            side = self.path.with_name(f"{self.path.name}.torn-{time.time_ns()}")
            side.write_bytes(data[keep:])
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())


@dataclass
class StepResult:
    target: int
    serial: str
    port: str
    step: int
    action: str
    outcome: str  # confirmed, unchanged, failed, unconfirmed, skipped, resumed, dry-run, not-run
    detail: str = ""
    txid: int | None = None
    data: dict = field(default_factory=dict)
    #: a write step worked out (dry run, preview) or sent: its before/after rows and warnings (change_view)
    change: dict | None = None

    def as_dict(self) -> dict:
        return {"target": self.target, "serial_number": self.serial, "port": self.port, "step": self.step,
                "action": self.action, "outcome": self.outcome, "detail": self.detail, "txid": self.txid,
                **({"change": self.change} if self.change is not None else {}),
                **({"data": self.data} if self.data else {})}


@dataclass
class TargetReport:
    target: Target
    outcome: str = "pending"  # ok, failed, unconfirmed, preflight-failed, stopped
    detail: str = ""
    steps: list[StepResult] = field(default_factory=list)
    #: the preview of a run that asks first: each write step worked out (nothing sent, nothing journalled)
    preview: list[StepResult] = field(default_factory=list)
    #: the pump's last txid when preflight read it: what was shown is of the pump at this txid
    read_txid: int | None = None
    #: the prepared writes the preview worked out, by step number: (PREPARE fields, based on txid)
    shown: dict[int, tuple[dict | None, int]] = field(default_factory=dict)
    sent: bool = False  # a write went out to this pump in this run
