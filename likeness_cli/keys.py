"""``likeness keys``: API keys (needs an admin key on the "*" gallery)."""

from __future__ import annotations

from typing import Annotated

import typer

from likeness_cli import _options as opt
from likeness_cli import _output as out
from likeness_cli._exit import ExitCode, fail

app = typer.Typer(help="API keys (admin role on the '*' gallery required).", no_args_is_help=True)

_ROLES = ("read", "enroll", "admin")


def _parse_scopes(pairs: list[str]) -> dict[str, str]:
    scopes: dict[str, str] = {}
    for pair in pairs:
        gallery, sep, role = pair.partition("=")
        if not sep or not gallery or role not in _ROLES:
            fail(
                f"--scope expects GALLERY=ROLE with ROLE one of {', '.join(_ROLES)}, got {pair!r}",
                ExitCode.USAGE,
            )
        scopes[gallery] = role
    return scopes


@app.command("create")
@opt.connected()
def create(
    name: Annotated[str, typer.Argument(help="A name to recognise the key by.")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            "-s",
            help="GALLERY=ROLE (repeatable); GALLERY may be '*' for every gallery, "
            "ROLE is read, enroll or admin.",
        ),
    ],
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Create a key. Its secret is printed this once and never again: store it now."""
    scopes = _parse_scopes(scope)
    with connection.client() as client:
        created = client.create_api_key(name, scopes)
    if json_output:
        out.emit_json(created)
        return
    console = out.stdout()
    console.print(
        out.key_values(
            f"created key {created.key.name!r}",
            [
                ("key id", created.key.key_id),
                ("scopes", out.metadata(created.key.scopes)),
                ("secret", created.secret),
            ],
        )
    )
    out.stderr().print("The secret is shown only this once; store it now.")


@app.command("list")
@opt.connected()
def list_keys(
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Every key, revoked ones included (never their secrets)."""
    with connection.client() as client:
        keys = client.list_api_keys()
    if json_output:
        out.emit_json(keys)
        return
    table = out.table(
        out.plural(len(keys), "API key"), "key id", "name", "scopes", "created", "state"
    )
    for k in keys:
        table.add_row(
            k.key_id,
            k.name,
            out.metadata(k.scopes),
            out.timestamp(k.created_at),
            "revoked" if k.revoked else "active",
        )
    out.stdout().print(table)


@app.command("revoke")
@opt.connected()
def revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (see `keys list`).")],
    *,
    connection: opt.Connection,
) -> None:
    """Revoke a key: calls with it are refused from now on."""
    with connection.client() as client:
        client.revoke_api_key(key_id)
    out.stdout().print(f"revoked key {key_id}")


def register(root: typer.Typer) -> None:
    """Add ``keys`` to ``root``."""
    root.add_typer(app, name="keys")
