"""``manage.py sessionkit init|gc|stats|list|revoke|export|erase|audit|keygen``: the
``sessionkit`` command line (``sessionkit.cli``) on the project's configured store and
settings, so the two never drift. ``--user`` takes the user key the session index stores
(``SESSIONKIT["USER_KEY"]``: the primary key unless configured otherwise)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessionkit import Store, open_store
from sessionkit_django.conf import engines


def project_store() -> Store:
    """A store of its own for the command (the CLI closes it when done)."""
    store = engines().config.store
    return open_store(store) if isinstance(store, str) else store


class Command(BaseCommand):
    help = (
        "Manage sessionkit sessions: init, gc, stats, list --user, revoke --user, "
        "export --user, erase --user, audit --user."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "args", nargs=argparse.REMAINDER, help="a sessionkit subcommand and its options"
        )

    def run_from_argv(self, argv: list[str]) -> None:
        """Hand the command line to click untouched (Django's parser would eat --user)."""
        group = self._group()
        group.main(args=argv[2:], prog_name=f"{os.path.basename(argv[0])} sessionkit")

    def handle(self, *args: str, **options: Any) -> None:
        import click

        try:
            self._group().main(args=list(args), prog_name="sessionkit", standalone_mode=False)
        except click.ClickException as exc:
            raise CommandError(exc.format_message()) from exc
        except SystemExit as exc:
            if exc.code:
                raise CommandError(f"sessionkit {' '.join(args)} failed") from exc

    @staticmethod
    def _group() -> Any:
        try:
            from sessionkit.cli import build_group
        except ImportError as exc:  # pragma: no cover - click missing
            raise CommandError("needs click: pip install 'sessionkit[cli]'") from exc
        return build_group(
            project_store, name="manage.py sessionkit", get_config=lambda: engines().config
        )
