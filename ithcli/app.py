"""The application object in ctx.obj: settings, the lazily opened pump, output mode."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class App:
    port: str | None
    timeout: float
    json: bool
    verbose: int
    drug_library_path: str | None = None
    operator: str | None = None
    audit_path: str | None = None
    state_dir: str | None = None
    serial: str | None = None  # from HELLO
    last_raw_status: dict | None = None  # the last INTERROGATE reply, as decoded
    _link: object = field(default=None, repr=False)
    _client: object = field(default=None, repr=False)
    _library: object = field(default=None, repr=False)

    # --- the pump ---------------------------------------------------------
    def client(self):
        """Open the port (starting the emulator for --port emulator) and say HELLO once."""
        if self._client is None:
            from .client import PumpClient
            from .link import open_link

            self.diag(f"opening {self.port}")
            self._link = open_link(self.port, verbose=self.verbose)
            # a pty keeps replies nobody read: drop them so they cannot be mistaken for ours
            self._link.discard_input()
            self._client = PumpClient(self._link, timeout=self.timeout, verbose=self.verbose)
            self._client.on_exchange = self._audit_exchange
            hello = self._client.hello()
            self.serial = hello["serial_number"]
            self.diag(f"connected to {hello['serial_number']} ({hello['model'].name}) on {self._link.url}")
        return self._client

    @property
    def emulated(self) -> bool:
        return bool(self._link is not None and self._link.emulated)

    @property
    def link_url(self) -> str | None:
        return self._link.url if self._link is not None else None

    # --- local state: audit log and unconfirmed writes ------------------------
    def state_path(self):
        from pathlib import Path

        from .state import default_state_dir

        return Path(self.state_dir) if self.state_dir else default_state_dir()

    def audit(self):
        from .audit import AuditLog

        return AuditLog(self.audit_path or self.state_path() / "audit.jsonl")

    def pending(self):
        from .state import PendingWrites

        return PendingWrites(self.state_path())

    def record(self, event: str, **fields) -> None:
        """Append to the audit log with who, where and which pump."""
        self.audit().append({
            "event": event, "operator": self.operator, "port": self.port,
            "pump_serial": self.serial, **fields,
        })

    def _audit_exchange(self, command, request, reply, outcome) -> None:
        if reply is not None and command.name == "READ_LOG":
            reply = {k: v for k, v in reply.items() if k != "events"} | {"events": len(reply["events"])}
        self.record("exchange", command=command.name, request=request, response=reply, outcome=outcome,
                    txid=request.get("txid"))

    def resolve_pending(self) -> dict | None:
        """Any read first settles an unconfirmed write to this pump, by asking the pump."""
        from .writes import resolve_pending

        client = self.client()
        return resolve_pending(self, client, self.serial)

    def interrogate(self, *, resolve: bool = True) -> dict:
        """Read the full status and describe it (units, projections, read time)."""
        from .status import describe

        client = self.client()
        if resolve:
            self.resolve_pending()
        raw = self.last_raw_status = client.interrogate()
        return describe(
            raw, self.library(), read_at=int(time.time()), port=self.port or "", emulated=self.emulated
        )

    def library(self):
        if self._library is None:
            from . import druglib

            self._library = druglib.load(self.drug_library_path)
        return self._library

    def close(self) -> None:
        if self._link is not None:
            link, self._link, self._client = self._link, None, None
            link.close()

    # --- output -----------------------------------------------------------
    def diag(self, text: str, level: int = 1) -> None:
        if self.verbose >= level:
            print(f"ithcli: {text}", file=sys.stderr, flush=True)

    def emit(self, obj: dict, render) -> None:
        """JSON on stdout with --json; otherwise call render(obj) for people."""
        if self.json:
            from .output import print_json

            print_json(obj)
        else:
            render(obj)
