"""The clinic's policy: its clinicians (with their public keys) and which writes need an
independent second verifier. One TOML file, kept by the clinic's administrator:

    [policy]
    version = 1
    name = "Pain clinic, St Elsewhere"

    [double_check]
    # write kinds needing a second clinician, by the drug the pump holds (drug library
    # names; "*" for every drug). Kinds: program, refill, bolus, priming-bolus, ptm, empty
    program = ["morphine", "hydromorphone", "fentanyl", "sufentanil", "baclofen"]
    refill = ["morphine", "hydromorphone", "fentanyl", "sufentanil", "baclofen"]
    bolus = ["morphine", "hydromorphone", "fentanyl", "sufentanil", "baclofen"]
    concentration_change = true   # every refill that changes the drug or its concentration
    valid_minutes = 60            # a double check is good for this long after it is requested

    [clinicians.dr-roe]
    name = "Dr Jane Roe"
    public_key = "ed25519:..."    # printed by `ithcli credential new`
    # active = false              # a clinician who left: their signatures are refused

Whoever can edit this file decides who counts as a second clinician, so a file that group
or others may write is refused (give it to an administrator's account). Without a policy
file no write needs a second verifier, and `--verified-by` is refused (nobody to check it
against). --clinic-policy FILE, env ITHCLI_CLINIC_POLICY.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .credentials import parse_public
from .errors import UsageError
from .protected_files import OTHERS_WRITE, read_protected

#: the write kinds a policy may name (the checked changes' command names)
DOUBLE_CHECK_KINDS = ("program", "refill", "bolus", "priming-bolus", "ptm", "empty")
DEFAULT_VALID_MINUTES = 60
MAX_VALID_MINUTES = 24 * 60


@dataclass(frozen=True)
class Clinician:
    id: str
    name: str
    public_key: str  # "ed25519:BASE64"
    active: bool = True

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id})"


@dataclass(frozen=True)
class ClinicPolicy:
    path: str
    name: str
    clinicians: dict[str, Clinician]  # by id
    #: kind -> the drug library names (lower case) whose writes of that kind need a second verifier
    double_check: dict[str, frozenset[str]] = field(default_factory=dict)
    concentration_change: bool = False
    valid_minutes: int = DEFAULT_VALID_MINUTES

    def clinician_for(self, public_key: str) -> Clinician | None:
        for clinician in self.clinicians.values():
            if clinician.public_key == public_key:
                return clinician
        return None

    def needs_second_verifier(self, kind: str, drug: str, *, concentration_change: bool = False) -> str | None:
        """Why this write needs a second clinician (None: it does not)."""
        drugs = self.double_check.get(kind, frozenset())
        if "*" in drugs or drug.lower() in drugs:
            return f"the clinic policy ({self.path}) has every {kind} of {drug.lower()} double-checked"
        if concentration_change and self.concentration_change:
            return f"the clinic policy ({self.path}) has every change of drug or concentration double-checked"
        return None


def load_policy(path: str | os.PathLike) -> ClinicPolicy:
    where = str(path)
    data = _toml(Path(path))

    def fail(what: str) -> UsageError:
        return UsageError(f"clinic policy {where}: {what}")

    meta = data.get("policy")
    if not isinstance(meta, dict) or meta.get("version") != 1:
        raise fail("[policy] version = 1 is required")
    for key in data:
        if key not in ("policy", "double_check", "clinicians"):
            raise fail(f"unknown table [{key}] (typo?)")
    rules, concentration_change, valid = _double_check(data.get("double_check", {}), fail)
    clinicians = _clinicians(data.get("clinicians", {}), fail, where)
    return ClinicPolicy(where, str(meta.get("name", "")), clinicians, rules, concentration_change, valid)


def _double_check(table: object, fail) -> tuple[dict[str, frozenset[str]], bool, int]:
    if not isinstance(table, dict):
        raise fail("[double_check] must be a table")
    rules: dict[str, frozenset[str]] = {}
    for key, value in table.items():
        if key in ("concentration_change", "valid_minutes"):
            continue
        if key not in DOUBLE_CHECK_KINDS:
            raise fail(f"[double_check] {key}: not a write kind ({', '.join(DOUBLE_CHECK_KINDS)})")
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise fail(f"[double_check] {key}: expected a list of drug names (or [\"*\"])")
        rules[key] = frozenset(v.lower() for v in value)
    concentration_change = table.get("concentration_change", False)
    if not isinstance(concentration_change, bool):
        raise fail("[double_check] concentration_change: expected true or false")
    valid = table.get("valid_minutes", DEFAULT_VALID_MINUTES)
    if type(valid) is not int or not 1 <= valid <= MAX_VALID_MINUTES:
        raise fail(f"[double_check] valid_minutes: expected a whole number of minutes, 1 to {MAX_VALID_MINUTES}")
    return rules, concentration_change, valid


def _clinicians(table: object, fail, where: str) -> dict[str, Clinician]:
    if not isinstance(table, dict):
        raise fail("[clinicians] must be a table of [clinicians.ID] tables")
    out: dict[str, Clinician] = {}
    seen: dict[str, str] = {}
    for cid, entry in table.items():
        if not isinstance(entry, dict):
            raise fail(f"[clinicians.{cid}] must be a table")
        for key in entry:
            if key not in ("name", "public_key", "active"):
                raise fail(f"[clinicians.{cid}] {key}: unknown field (typo?)")
        name, public, active = entry.get("name"), entry.get("public_key"), entry.get("active", True)
        if not isinstance(name, str) or not name.strip():
            raise fail(f"[clinicians.{cid}] name: required")
        if not isinstance(active, bool):
            raise fail(f"[clinicians.{cid}] active: expected true or false")
        parse_public(public, f"clinic policy {where}: [clinicians.{cid}]")
        assert isinstance(public, str)
        if public in seen:  # one key, two people: a signature could not say who signed
            raise fail(f"[clinicians.{cid}] has the same public key as [clinicians.{seen[public]}]")
        seen[public] = cid
        out[cid] = Clinician(cid, name.strip(), public, active)
    return out


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(_read_protected(path).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"clinic policy {path}: not valid TOML: {exc}") from None


def _read_protected(path: Path) -> bytes:
    """The file's bytes, refused when anyone but its owner may change it."""
    return read_protected(path, "clinic policy", forbidden=OTHERS_WRITE, refusal="may be changed by group or "
                          "others (mode {mode}): refused; anyone who can edit it decides who counts as a second "
                          "clinician")
