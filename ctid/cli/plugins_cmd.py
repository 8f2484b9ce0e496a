"""`ctid plugins`: list installed plugins (datasette style), including the ones that failed to load."""

from __future__ import annotations

import typer


def _table(rows: list[dict]) -> str:
    headers = ("NAME", "VERSION", "CONNECTORS", "CRMS", "HOOKS", "STATUS")
    lines = [
        (
            row["name"] + (" (built-in)" if row["builtin"] else ""),
            row["version"] or "-",
            ",".join(row["connectors"]) or "-",
            ",".join(row["crms"]) or "-",
            str(len(row["hooks"])),
            f"FAILED: {row['error']}" if "error" in row else "ok",
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
        False, "--json", help="Print JSON (name, version, hooks, connectors, crms)."
    ),
    all_: bool = typer.Option(False, "--all", help="Include the built-in plugins."),
) -> None:
    """List installed plugins and what they provide; plugins that failed to load are shown with their error.

    CTID_LOAD_PLUGINS=name1,name2 loads only those third-party plugins (empty: none).
    """
    import json

    from ctid.plugins import get_plugin_manager

    rows = get_plugin_manager().describe(all=all_)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif rows:
        typer.echo(_table(rows))
    else:
        typer.echo("no third-party plugins installed (--all shows the built-ins)")


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
