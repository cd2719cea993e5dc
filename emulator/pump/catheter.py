"""The catheter as the patient sees it: the fluid between the reservoir and the tip.

The pump itself only knows what left the reservoir; what reaches the spinal fluid is
what leaves the catheter's tip, first in first out. The emulator models that column
so a test can check what the patient received (the control channel's
"patient_received_ng"), which is how a priming bolus worked out from the wrong length,
or a refill with another concentration and no bridge bolus, shows up.

Exact integers: a segment holds volume_nl of drug at concentration_ng_per_ml, and
what leaves the tip is counted in nL*ng/mL (ng x 1e6), so nothing is lost to rounding.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from protocol import Drug

from .integers import check_uint

NL_PER_ML = 1_000_000


@dataclass
class Segment:
    volume_nl: int
    drug: Drug
    concentration_ng_per_ml: int  # 0: saline or spinal fluid, no drug

    def to_list(self) -> list[int]:
        return [self.volume_nl, int(self.drug), self.concentration_ng_per_ml]

    @classmethod
    def from_list(cls, data: list) -> Segment:
        volume, drug, concentration = data
        return cls(check_uint(volume, 32), Drug(check_uint(drug, 8)), check_uint(concentration, 32))


@dataclass
class Column:
    """The dead space, tip first: segments[0] leaves the catheter next."""

    segments: list[Segment] = field(default_factory=list)
    #: what has left the tip since manufacture, per drug, in nL*ng/mL (ng x 1e6)
    received: dict[Drug, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, volume_nl: int) -> Column:
        """A column of volume_nl holding no drug (a catheter just implanted)."""
        return cls([Segment(volume_nl, Drug.NONE, 0)] if volume_nl else [])

    @property
    def volume_nl(self) -> int:
        return sum(s.volume_nl for s in self.segments)

    def received_ng(self) -> dict[str, int]:
        return {drug.name: amount // NL_PER_ML for drug, amount in sorted(self.received.items())}

    def push(self, volume_nl: int, drug: Drug, concentration_ng_per_ml: int) -> None:
        """volume_nl enters at the pump's end; the same volume leaves at the tip."""
        if volume_nl <= 0:
            return
        self._enter(volume_nl, drug, concentration_ng_per_ml)
        self._leave(volume_nl)

    def _enter(self, volume_nl: int, drug: Drug, concentration: int) -> None:
        last = self.segments[-1] if self.segments else None
        if last is not None and (last.drug, last.concentration_ng_per_ml) == (drug, concentration):
            last.volume_nl += volume_nl
        else:
            self.segments.append(Segment(volume_nl, drug, concentration))

    def _leave(self, volume_nl: int) -> None:
        while volume_nl > 0:
            tip = self.segments[0]
            out = min(volume_nl, tip.volume_nl)
            if tip.concentration_ng_per_ml:
                self.received[tip.drug] = self.received.get(tip.drug, 0) + out * tip.concentration_ng_per_ml
            tip.volume_nl -= out
            volume_nl -= out
            if tip.volume_nl == 0:
                self.segments.pop(0)

    def replace_tip(self, total_nl: int, new_nl: int) -> None:
        """A revision: the column becomes total_nl long, its last new_nl at the tip a new,
        empty segment; the rest keeps what it held, counted from the pump's end."""
        keep = max(0, total_nl - new_nl)
        kept: list[Segment] = []
        for segment in reversed(self.segments):  # from the pump's end
            take = min(keep, segment.volume_nl)
            if take:
                kept.insert(0, Segment(take, segment.drug, segment.concentration_ng_per_ml))
            keep -= take
        if keep:  # a longer catheter than before: what the old one did not reach holds no drug
            kept.insert(0, Segment(keep, Drug.NONE, 0))
        self.segments = ([Segment(new_nl, Drug.NONE, 0)] if new_nl else []) + kept

    def resize(self, total_nl: int) -> None:
        """A corrected record: the tip end grows (with what the tip holds) or shrinks."""
        change = total_nl - self.volume_nl
        if change > 0:
            if self.segments:
                self.segments[0].volume_nl += change
            else:
                self.segments.append(Segment(change, Drug.NONE, 0))
        while change < 0 and self.segments:
            tip = self.segments[0]
            cut = min(-change, tip.volume_nl)
            tip.volume_nl -= cut
            change += cut
            if tip.volume_nl == 0:
                self.segments.pop(0)

    def to_dict(self) -> dict:
        return {"segments": [s.to_list() for s in self.segments],
                "received": {drug.name: amount for drug, amount in sorted(self.received.items())}}

    @classmethod
    def from_dict(cls, data: dict) -> Column:
        segments = [Segment.from_list(item) for item in data["segments"]]
        received = {Drug[name]: check_uint(amount, 127) for name, amount in data["received"].items()}
        return cls(segments, received)
