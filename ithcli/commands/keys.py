"""`ithcli keys`: provision, pair, list and remove per-pump keys."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..keystore import KeyStore, read_key_file
from ..ward_manifest import looks_like_manifest, read_manifest
from .completion import stored_serials


@click.group()
def keys():
    """Per-pump keys: one reader and one clinician key per serial number, owner-only files."""


@keys.command()
@click.option("--serial", required=True, help="The pump's serial number.")
@click.option("--pump-key-file", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the pump's copy (give it to ith-emulator --key-file).")
@click.option("--roles", type=click.Choice(["both", "reader", "clinician"]), default="both", show_default=True)
@click.option("--replace", is_flag=True, help="Replace keys already stored for this serial.")
@click.pass_obj
def provision(app, serial, pump_key_file, roles, replace):
    """Create fresh random keys for a pump: one copy in the key store, one for the pump."""
    from protocol.security import new_key

    from ..keystore import KeyStore, write_key_file

    out = Path(pump_key_file)
    if out.exists():
        raise UsageError(f"{out} exists: refusing to overwrite a pump key file")
    wanted = ("reader", "clinician") if roles == "both" else (roles,)
    new = {role: new_key() for role in wanted}
    store = KeyStore(app.settings.key_store_dir)
    path = store.add(serial, new, replace=replace)
    write_key_file(out, serial, new)
    app.record("keys-provisioned", pump_serial=serial, roles=list(wanted), key_ids=_ids(new))
    app.emit({"serial_number": serial, "roles": list(wanted), "key_store_file": str(path),
              "pump_key_file": str(out), "key_ids": _ids(new)},
             lambda r: _say(f"Provisioned {', '.join(r['roles'])} keys for {serial}: {r['key_store_file']} "
                            f"(programmer) and {r['pump_key_file']} (pump)."))


@keys.command()
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="A pump key file (e.g. the one ith-emulator --key-file created), or a ward's manifest "
              "(ith-emulator --pumps N printed its path): every pump in it.")
@click.option("--role", type=click.Choice(["both", "reader", "clinician"]), default="both", show_default=True,
              help="Take only this role's key (a read-only programmer gets 'reader').")
@click.option("--replace", is_flag=True, help="Replace keys already stored for this serial.")
@click.pass_obj
def pair(app, source, role, replace):
    """Pair with a pump: copy its keys (or one role's) into the key store. From a ward's
    manifest, every pump of it, or none when one cannot be (each key file is read and checked
    against the store before any is stored)."""
    if not Path(source).is_file():  # one line, as every usage error (not click's two)
        raise UsageError(f"--from {source}: no such file (give a pump key file or a ward's manifest)")
    if looks_like_manifest(source):
        _pair_ward(app, source, role, replace)
        return
    data = read_key_file(Path(source))
    chosen = _role_keys(data["keys"], role, source)
    path = KeyStore(app.settings.key_store_dir).add(data["serial"], chosen, replace=replace)
    app.record("keys-paired", pump_serial=data["serial"], roles=sorted(chosen), key_ids=_ids(chosen))
    app.emit({"serial_number": data["serial"], "roles": sorted(chosen), "key_store_file": str(path),
              "key_ids": _ids(chosen)},
             lambda r: _say(f"Paired {r['serial_number']} ({', '.join(r['roles'])}): {r['key_store_file']}"))


def _role_keys(keys: dict[str, bytes], role: str, source: str) -> dict[str, bytes]:
    chosen = keys if role == "both" else {r: k for r, k in keys.items() if r == role}
    if not chosen:
        raise UsageError(f"{source} holds no {role} key")
    return chosen


def _pair_ward(app, source: str, role: str, replace: bool) -> None:
    manifest = read_manifest(source)
    pairs = []
    for pump in manifest.pumps:
        data = read_key_file(Path(pump.key_file))
        if data["serial"] != pump.serial:
            raise UsageError(f"ward manifest {source}: {pump.key_file} is for {data['serial']!r}, not {pump.serial!r}")
        pairs.append((pump.serial, _role_keys(data["keys"], role, pump.key_file)))
    store = KeyStore(app.settings.key_store_dir)
    if not replace:  # all or none: refuse before the first is stored
        for serial, chosen in pairs:
            path = store.path_for(serial)
            if path.exists() and read_key_file(path)["keys"] != chosen:
                raise UsageError(f"{serial} already has different keys in {path}: pass --replace to re-pair")
    rows = []
    for number, (serial, chosen) in enumerate(pairs, 1):
        path = store.add(serial, chosen, replace=replace)
        # one audit entry a pump; the last one's flush makes them all durable together
        app.session().record("keys-paired", pump_serial=serial, roles=sorted(chosen), key_ids=_ids(chosen),
                             manifest=source, durable=number == len(pairs))
        rows.append({"serial_number": serial, "roles": sorted(chosen), "key_store_file": str(path),
                     "key_ids": _ids(chosen)})
    app.emit({"manifest": source, "key_store": str(store.dir), "paired": rows},
             lambda r: _say(f"Paired {len(r['paired'])} pumps of the ward {r['manifest']}: {r['key_store']}"))


@keys.command(name="list")
@click.pass_obj
def list_(app):
    """The pumps and roles the key store holds keys for (key ids only, never keys)."""
    from protocol.security import key_id

    from ..keystore import KeyStore

    store = KeyStore(app.settings.key_store_dir)
    rows = [{"serial_number": e.serial, "role": e.role, "key_id": key_id(e.key).hex(), "file": e.path}
            for e in store.entries()]

    def render(r):
        from rich.table import Column, Table

        from ..output import console

        if not r["keys"]:
            console().print(f"No keys in {r['key_store']}.")
            return
        # a narrow terminal folds the path (never cuts it); serials and key ids stay whole
        table = Table(Column("Serial", no_wrap=True), "Role", Column("Key id", no_wrap=True), "File",
                      title=f"Key store {r['key_store']}", title_justify="left")
        for k in r["keys"]:
            table.add_row(k["serial_number"], k["role"], k["key_id"], k["file"])
        console().print(table)

    app.emit({"key_store": str(store.dir), "keys": rows}, render)


@keys.command()
@click.option("--serial", required=True, shell_complete=stored_serials)
@click.pass_obj
def remove(app, serial):
    """Forget a pump's keys (e.g. after the pump was re-provisioned)."""
    from ..keystore import KeyStore

    if not KeyStore(app.settings.key_store_dir).remove(serial):
        raise UsageError(f"no keys stored for {serial}")
    app.record("keys-removed", pump_serial=serial)
    app.emit({"serial_number": serial, "removed": True}, lambda r: _say(f"Removed the keys of {serial}."))


def _ids(keys: dict) -> dict:
    from protocol.security import key_id

    return {role: key_id(k).hex() for role, k in keys.items()}


def _say(text: str) -> None:
    from ..output import console

    console().print(text)
