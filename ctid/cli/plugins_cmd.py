"""`ctid plugins`: list the plugins, built-in and installed (datasette style), including the ones that failed to load."""

from __future__ import annotations

import typer


def _status(row: dict) -> str:
    if "error" in row:
        return f"FAILED: {row['error']}"
    if "skipped" in row:
        return f"skipped: {row['skipped']}"
    return "ok"


def _table(rows: list[dict]) -> str:
    headers = ("NAME", "VERSION", "CONNECTORS", "CRMS", "HOOKS", "STATUS")
    lines = [
        (
            row["name"] + (" (built-in)" if row["builtin"] else ""),
            row["version"] or "-",
            ",".join(row["connectors"]) or "-",
            ",".join(row["crms"]) or "-",
            str(len(row["hooks"])),
            _status(row),
        )
        for row in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *lines, strict=False)]
    widths[-1] = 0  # the status column is last: no padding
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (headers, *lines)
    )


def plugins(
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON: a list of {name, dist, version, builtin, hooks, connectors, crms}, "
        "plus error for a plugin that failed to load and skipped for one left out."
    ),
    all_: bool = typer.Option(
        False, "--all", help="Also list installed plugins that CTID_LOAD_PLUGINS left out (not loaded)."
    ),
) -> None:
    """List plugins, built-in and third-party, and what they provide; plugins that failed to load are shown
    with their error.

    CTID_LOAD_PLUGINS=name1,name2 loads only those third-party plugins (empty: none); --all lists the others.
    """
    import json

    from ctid.plugins import get_plugin_manager

    rows = get_plugin_manager().describe(all=all_)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif rows:
        typer.echo(_table(rows))
    else:
        typer.echo("no plugins loaded")


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
