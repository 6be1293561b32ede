"""The ``sessionkit`` command. ``keygen`` is here now; the store commands (init, gc, stats,
list, revoke) arrive with the server-side stores. Needs ``click`` (``sessionkit[cli]``)."""

from __future__ import annotations

import secrets
import sys
from typing import Any


def _build() -> Any:
    import click

    @click.group(help="sessionkit: manage keys and session stores.")
    @click.version_option(package_name="sessionkit")
    def main() -> None:
        pass

    @main.command(help="Print a new random secret key (48 bytes, base64url).")
    @click.option("--bytes", "size", default=48, show_default=True, type=click.IntRange(32, 256))
    def keygen(size: int) -> None:
        click.echo(secrets.token_urlsafe(size))

    return main


def main(argv: list[str] | None = None) -> None:
    try:
        command = _build()
    except ImportError:
        print(
            "sessionkit: the command line needs click; install it with "
            "`pip install 'sessionkit[cli]'`",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    command.main(args=argv, prog_name="sessionkit")


if __name__ == "__main__":
    main()
