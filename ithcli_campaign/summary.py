"""What a campaign found: counts of every kind, and each violation with its session."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .oracle import reconciled
from .plans import fault_name
from .proxy import TO_CLI, TO_PUMP
from .writes import SWEEP_KINDS


@dataclass
class Summary:
    sessions: int = 0
    violations: list = field(default_factory=list)
    exits: Counter = field(default_factory=Counter)
    truths: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    faults_fired: Counter = field(default_factory=Counter)
    reconciled: Counter = field(default_factory=Counter)
    writes: Counter = field(default_factory=Counter)
    links: Counter = field(default_factory=Counter)
    doubles: Counter = field(default_factory=Counter)  # sessions with two faults, by the pair
    #: per write (kind:variant): each verdict ithcli gave ("verified", "failed", "verify failed",
    #: "unconfirmed: applied" / "unconfirmed: not applied" after reconcile) and the pump's truth ("truth new"...)
    verdicts: defaultdict = field(default_factory=lambda: defaultdict(Counter))
    #: the patient's presses of the handheld between sessions: granted, or refused and why
    activations: Counter = field(default_factory=Counter)
    # per write kind and direction: the COMMIT (reply) byte offsets a cut fired at
    cut_offsets: dict = field(default_factory=lambda: {k: {TO_PUMP: set(), TO_CLI: set()} for k in SWEEP_KINDS})
    commit_frame_len: dict = field(default_factory=dict)  # per write kind: {direction: bytes}
    seconds: float = 0.0

    def add(self, r: dict) -> None:
        self.sessions += 1
        self.exits[r["exit"]] += 1
        self.truths[r["truth"]] += 1
        self.writes[r["write"]["kind"]] += 1
        self.links[r["link"]] += 1
        label = r["write"]["kind"] + (f":{r['write']['variant']}" if r["write"].get("variant") else "")
        verdict = r["verdict"]
        if "reconcile" in r:
            verdict = f"{verdict}: {reconciled(r['reconcile'])}"
            self.reconciled[reconciled(r["reconcile"])] += 1
        self.verdicts[label][verdict] += 1
        self.verdicts[label][f"truth {r['truth']}"] += 1
        if r.get("activation"):
            self.activations[r["activation"]] += 1
        self._add_faults(r)
        for text in r["violations"]:
            self.violations.append({"session": r["session"], "write": r["write"], "fault": r["fault"],
                                    "exit": r["exit"], "problem": text})

    def _add_faults(self, r: dict) -> None:
        f = r["fault"]
        parts = [f] + ([f["also"]] if "also" in f else [])
        for part in parts:  # each fault counted on its own, armed and fired
            name = fault_name(part)
            self.faults[name] += 1
            if part["layer"] == "none" or part.get("used") or (part["layer"] == "proxy" and part["fault"]["fired"]):
                self.faults_fired[name] += 1
        if len(parts) > 1:
            self.doubles[" + ".join(fault_name(p) for p in parts)] += 1
        if len(parts) == 1 and f["layer"] == "proxy" and f["fault"]["kind"] == "cut" \
                and f["fault"]["target"] == "commit" and f["fault"]["fired"] and r["write"]["kind"] in self.cut_offsets:
            self.cut_offsets[r["write"]["kind"]][f["fault"]["direction"]].add(f["fault"]["offset"])

    def as_dict(self) -> dict:
        return {"sessions": self.sessions, "violations": self.violations, "exits": dict(self.exits),
                "writes": dict(self.writes), "links": dict(self.links), "truths": dict(self.truths),
                "verdicts": {k: dict(sorted(c.items())) for k, c in sorted(self.verdicts.items())},
                "activations": dict(sorted(self.activations.items())),
                "faults": dict(sorted(self.faults.items())), "double_faults": sum(self.doubles.values()),
                "faults_fired": dict(sorted(self.faults_fired.items())), "reconciled": dict(self.reconciled),
                "cut_offsets": {k: {d: sorted(s) for d, s in by_dir.items()} for k, by_dir in self.cut_offsets.items()},
                "commit_frame_len": self.commit_frame_len, "seconds": round(self.seconds, 1)}
