"""What the pump's state refuses whatever the values: the checks every PREPARE meets first on
the pump (emulator/pump/write_kinds.py: a battery at end of service takes no write; most writes
need delivery under the pump's control, so none while MRI-safe mode is on; MRI-safe mode is
entered from off and left from on). Said here before anything is sent, with what to do, instead
of the pump's INVALID_STATE after PREPARE."""
from __future__ import annotations

from protocol import BatteryState, MriMode

from .findings import Finding


def check_writable(raw, *, what: str, in_mri_safe_mode: bool = False, auto_exit_at: str | None = None
                   ) -> list[Finding]:
    """raw: the pump's Status; what: the change, as "refill" in "refill after ithcli mri exit".
    in_mri_safe_mode: the write is taken in MRI-safe mode too (the clock, the patient record).
    auto_exit_at: when MRI-safe mode ends by itself, on this computer's calendar (interrogate's
    mri_auto_exit_at), said with the refusal."""
    if raw.battery_state == BatteryState.EOS:
        return [Finding("refuse", "battery-eos",
                        "the battery is at end of service: the pump has stopped delivery and takes no change "
                        f"({what} included): replace the pump")]
    if raw.mri_mode == MriMode.SAFE and not in_mri_safe_mode:
        until = f" (automatic exit at {auto_exit_at})" if auto_exit_at else ""
        return [Finding("refuse", "mri-safe-mode",
                        f"the pump is in MRI-safe mode{until}, delivery suspended: {what} after "
                        "ithcli mri exit")]
    return []


def check_mri_enter(raw, *, auto_exit_at: str | None = None) -> list[Finding]:
    """MRI-safe mode is entered from off; to restart its timer, leave it and enter again. (End of
    service BLOCKs the pre-MRI checklist, which `mri enter` runs first.)"""
    if raw.mri_mode != MriMode.SAFE:
        return []
    until = f" (automatic exit at {auto_exit_at})" if auto_exit_at else ""
    return [Finding("refuse", "mri-already-on",
                    f"the pump is already in MRI-safe mode{until}: to restart its timer, ithcli mri exit "
                    "and enter again")]


def check_mri_exit(raw) -> list[Finding]:
    """MRI-safe mode is left only from on."""
    out = check_writable(raw, what="leave MRI-safe mode", in_mri_safe_mode=True)
    if raw.mri_mode != MriMode.SAFE:
        out.append(Finding("refuse", "mri-not-on",
                           "the pump is not in MRI-safe mode: there is nothing to exit (ithcli interrogate shows "
                           "its mode)"))
    return out
