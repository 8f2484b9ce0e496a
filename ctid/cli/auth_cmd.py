"""`ctid auth hash-password`: make a password hash for ``auth.users[].password_hash``."""

from __future__ import annotations

import typer

auth_app = typer.Typer(name="auth", help="Authentication helpers.", no_args_is_help=True)


@auth_app.command("hash-password")
def hash_password(
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input instead of prompting."
    ),
) -> None:
    """Print a salted scrypt hash of a password, for auth.users[].password_hash in the configuration."""
    import sys

    from ctid.auth_hash import hash_password as make_hash
    from ctid.cli import fail
    from ctid.errors import RequestError

    if password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise fail(RequestError("the password is empty"))
    typer.echo(make_hash(password))


def register(app: typer.Typer) -> None:
    app.add_typer(auth_app)
