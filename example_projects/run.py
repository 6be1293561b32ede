"""``make demo``: set up, then serve the shop (Django), the notes (Flask) and the sessions
dashboard (FastAPI) on 127.0.0.1, sharing one session store; Ctrl-C stops all three.

    python -m example_projects.run                      # SQLite store in example_projects/data
    python -m example_projects.run --store redis://127.0.0.1:6379/0
    python -m example_projects.run --check              # set up, start, probe, stop (CI)

Each app runs in its own process (gunicorn for the two WSGI apps, uvicorn for FastAPI), as
in production, so the shared login really crosses process and framework boundaries.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from example_projects.shared import config

ROOT = config.PACKAGE.parent
READY_TIMEOUT = 60.0


@dataclass
class Server:
    key: str
    port: int
    command: list[str]
    process: subprocess.Popen[bytes] | None = None


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m example_projects.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", default=os.environ.get(config.ENV_STORE),
                        help="store URL (default: SQLite in the data folder; env "
                        f"{config.ENV_STORE})")  # fmt: skip
    parser.add_argument("--data", type=Path, default=os.environ.get(config.ENV_DATA),
                        help="data folder (default: example_projects/data)")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on")
    parser.add_argument("--ports", default="8001,8002,8003",
                        help="shop,notes,dashboard ports (default: 8001,8002,8003)")  # fmt: skip
    parser.add_argument("--check", action="store_true",
                        help="set up, start the three servers, probe them, stop, exit")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        ports = [int(p) for p in args.ports.split(",")]
    except ValueError:
        parser.error(f"--ports {args.ports!r}: give three port numbers, e.g. 8001,8002,8003")
    if len(ports) != 3:
        parser.error("--ports needs three ports: shop,notes,dashboard")
    args.port_list = ports
    return args


def configure(args: argparse.Namespace) -> None:
    """Put the shared settings in the environment, which the three servers inherit."""
    if args.data is not None:
        os.environ[config.ENV_DATA] = str(Path(args.data).resolve())
    if args.store:
        os.environ[config.ENV_STORE] = args.store
    for env, port in zip(config.ENV_URLS.values(), args.port_list, strict=True):
        os.environ[env] = f"http://{args.host}:{port}/"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_projects.django_shop.settings")


def setup() -> None:
    """Everything a fresh clone lacks: the key, the store's schema, the shop's database and
    the demo user. Idempotent: a second run changes nothing (the password is reset)."""
    from sessionkit import StoreUnavailable, open_store

    config.secret_key()
    store = open_store(config.store_url())
    try:
        store.create_schema()
        store.load("0" * 64)  # fails now, with the URL, if the store cannot be reached
    except StoreUnavailable as exc:
        raise SystemExit(f"The session store is unreachable: {exc}") from None
    finally:
        store.close()

    import django
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    users = get_user_model()
    user = users.objects.filter(username=config.DEMO_USER).first()
    if user is None:
        user = users(username=config.DEMO_USER)
    user.set_password(config.DEMO_PASSWORD)
    user.save()


def servers(args: argparse.Namespace) -> list[Server]:
    host = args.host
    shop, notes, dashboard = args.port_list
    gunicorn = [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "8",
                "--log-level", "warning", "--graceful-timeout", "3"]  # fmt: skip
    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--no-access-log"]
    return [
        Server("shop", shop, [*gunicorn, "--bind", f"{host}:{shop}",
                              "example_projects.django_shop.wsgi:application"]),
        Server("notes", notes, [*gunicorn, "--bind", f"{host}:{notes}",
                                "example_projects.flask_notes.app:create_app()"]),
        Server("dashboard", dashboard, [*uvicorn, "--host", host, "--port", str(dashboard),
                                        "--factory",
                                        "example_projects.fastapi_dashboard.app:create_app"]),
    ]  # fmt: skip


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def start(all_servers: list[Server]) -> None:
    for server in all_servers:
        # Own session: Ctrl-C reaches the launcher only, which then stops each child.
        # The command is ours (this interpreter, fixed modules), never user input.
        server.process = subprocess.Popen(  # noqa: S603
            server.command, cwd=ROOT, start_new_session=True
        )


def wait_ready(all_servers: list[Server], host: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(all_servers)
    while pending:
        for server in list(pending):
            assert server.process is not None
            if server.process.poll() is not None:
                raise SystemExit(f"The {server.key} server exited with {server.process.returncode}")
            try:
                url = f"http://{host}:{server.port}/static/style.css"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        pending.remove(server)
            except OSError:
                pass
        if pending and time.monotonic() > deadline:
            names = ", ".join(s.key for s in pending)
            raise SystemExit(f"Not ready after {READY_TIMEOUT:.0f} s: {names}")
        if pending:
            time.sleep(0.1)


def stop(all_servers: list[Server]) -> None:
    for server in all_servers:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    for server in all_servers:
        if server.process is None:
            continue
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def banner(args: argparse.Namespace) -> str:
    from sessionkit.stores.base import mask_url

    lines = ["", "sessionkit demo: one session, three frameworks", ""]
    for link in config.links():
        lines.append(f"  {link.title:<20} {link.url}")
    lines += [
        "",
        f"  Sign in as  {config.DEMO_USER!r}  with password  {config.DEMO_PASSWORD!r}",
        f"  Store       {mask_url(config.store_url())}",
        f"  Data        {config.data_dir()}",
        "",
        "Ready. Press Ctrl-C to stop the three servers." if not args.check else "Ready.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    configure(args)
    busy = [p for p in args.port_list if not port_free(args.host, p)]
    if busy:
        print(f"Port(s) {busy} on {args.host} are in use; stop what uses them or pass "
              "--ports (e.g. --ports 9001,9002,9003).", file=sys.stderr)  # fmt: skip
        return 1
    began = time.monotonic()
    setup()
    all_servers = servers(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the children on kill, too
    try:
        start(all_servers)
        wait_ready(all_servers, args.host)
        print(banner(args), flush=True)
        print(f"(set up and started in {time.monotonic() - began:.1f} s)", flush=True)
        if args.check:
            return 0
        while all(s.process is not None and s.process.poll() is None for s in all_servers):
            time.sleep(0.5)
        print("A server stopped unexpectedly; stopping the others.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping the three servers...", flush=True)
        return 0
    finally:
        stop(all_servers)


if __name__ == "__main__":
    sys.exit(main())
