"""`ithcli credential`: a clinician's own signing key, for orders' double checks."""
from __future__ import annotations

import re
from pathlib import Path

import click

from ..clinic_policy import load_policy
from ..credentials import new_credential, read_credential
from ..errors import UsageError
from ..output import console

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


@click.group()
def credential():
    """Your clinician credential: a key only you hold, that signs double checks as you."""


@credential.command(name="new")
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to create it (readable by you only; an existing file is never replaced).")
@click.option("--id", "clinician_id", required=True, metavar="ID",
              help="Your id in the clinic policy, e.g. dr-roe (lower case letters, digits, . _ -).")
@click.option("--name", required=True, metavar="NAME", help="Your name as the clinic policy shows it.")
@click.option("--passphrase/--no-passphrase", default=True, show_default=True,
              help="Protect the key with a passphrase you type (asked twice).")
@click.pass_obj
def new(app, out, clinician_id, name, passphrase):
    """Create a credential and print the lines the clinic policy's administrator adds for you.

    The private key never leaves the file; give the administrator only the printed
    [clinicians.ID] table (it holds the public key)."""
    if not _ID.fullmatch(clinician_id):
        raise UsageError(f"--id {clinician_id!r}: lower case letters, digits, '.', '_' or '-' (up to 40)")
    secret = None
    if passphrase:
        secret = click.prompt("Passphrase", hide_input=True, confirmation_prompt=True, err=True).encode()
    cred = new_credential(Path(out), secret)
    snippet = f'[clinicians.{clinician_id}]\nname = "{name}"\npublic_key = "{cred.public_key}"\n'
    app.emit({"credential": out, "id": clinician_id, "name": name, "public_key": cred.public_key,
              "policy_entry": snippet},
             lambda r: console().print(f"Created {out} (mode 600). Ask the clinic policy's administrator to add:\n\n"
                                       + snippet, markup=False, highlight=False))


@credential.command(name="show")
@click.pass_obj
def show(app):
    """Who your --credential is in the --clinic-policy."""
    settings = app.settings
    if not settings.credential_path:
        raise UsageError("no credential given (--credential FILE, env ITHCLI_CREDENTIAL)")
    cred = read_credential(settings.credential_path, settings.ask_passphrase)
    out = {"credential": settings.credential_path, "public_key": cred.public_key, "clinician": None}
    if settings.clinic_policy_path:
        clinician = load_policy(settings.clinic_policy_path).clinician_for(cred.public_key)
        if clinician is not None:
            out["clinician"] = {"id": clinician.id, "name": clinician.name, "active": clinician.active}

    def render(r: dict) -> None:
        who = r["clinician"]
        said = (f"{who['name']} ({who['id']})" + ("" if who["active"] else ", NOT ACTIVE")) if who else \
            "not listed in the clinic policy" if settings.clinic_policy_path else "no --clinic-policy given"
        console().print(f"{r['credential']}: {r['public_key']}: {said}", markup=False, highlight=False)
    app.emit(out, render)
