"""A plan's targets taken from a ward manifest: `targets_from = "ward.json"` in its [plan] table.

`ith-emulator --pumps N` (or `--ward FILE`) writes a manifest of the pumps it serves
(ithcli/ward_manifest.py). Every pump of it becomes a target, in the manifest's order,
after the plan's own [[target]] tables: its port the pump's URL, its serial the pump's,
its drug the drug the manifest names (preflight still refuses a pump holding another).
The path is relative to the plan. A manifest that cannot be used (missing, not JSON, not a
manifest) is one error line naming the plan's line and what is wrong; nothing is sent.
"""
from __future__ import annotations

from pathlib import Path

from .errors import UsageError


def manifest_targets(plan_path: str, line: int, value: object) -> tuple[list[dict[str, str]], str | None]:
    """(the targets as [[target]] tables would give them, a problem with the value or None);
    UsageError, one line, when the manifest it names cannot be used."""
    if not isinstance(value, str) or not value:
        return [], "[plan]: targets_from must be \"FILE\" (a ward manifest, relative to the plan)"
    from .ward_manifest import read_manifest

    path = Path(plan_path).parent / value
    try:
        manifest = read_manifest(path)
    except UsageError as exc:
        raise UsageError(f"plan {plan_path}:{line}: targets_from: {exc.message}") from None
    return [{"port": p.url, "serial": p.serial, "drug": p.drug} for p in manifest.pumps], None
