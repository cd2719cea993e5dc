"""`ithcli ports`: the serial ports this machine has."""
from __future__ import annotations

import click


@click.command()
@click.pass_obj
def ports(app):
    """List serial ports (USB adapters, on-board UARTs) that --port can name."""
    from serial.tools import list_ports

    found = [
        {"device": p.device, "description": p.description, "hwid": p.hwid}
        for p in sorted(list_ports.comports(), key=lambda p: p.device)
    ]

    def render(obj):
        from rich.table import Table

        from ..output import console

        if not obj["ports"]:
            console().print("No serial ports found. Use --port emulator to try the emulated pump.")
            return
        table = Table("Device", "Description", "Hardware id")
        for p in obj["ports"]:
            table.add_row(p["device"], p["description"], p["hwid"])
        console().print(table)

    app.emit({"ports": found}, render)
