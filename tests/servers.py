"""Real servers for the store tests: redis-server (alone and as a three-master cluster),
memcached and PostgreSQL, from the Debian packages, on free loopback ports in temporary
directories. A server that does not come up fails the run with its log; nothing is skipped.

``make test`` installs the packages (``.ci/ensure-servers``). Each server object can be
stopped and started again on the same port, so tests can take a store down mid-test.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


class ServerFailed(RuntimeError):
    """A test server did not start; the message carries its log."""


class PortTaken(ServerFailed):
    """The port was someone else's by the time the server started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _binary(name: str, *globs: str, first: str = "path") -> str:
    """``name`` from PATH, or the newest match of ``globs`` (Debian keeps PostgreSQL's
    server programs in /usr/lib/postgresql/<version>/bin); ``first="glob"`` prefers those."""
    matches = [m for pattern in globs for m in sorted(glob.glob(pattern), reverse=True)]
    on_path = shutil.which(name)
    ordered = [*matches, on_path] if first == "glob" else [on_path, *matches]
    found = next((candidate for candidate in ordered if candidate), None)
    if found is None:
        raise ServerFailed(
            f"{name} is not installed; run `make test` (it installs redis-server, memcached "
            "and postgresql with apt) or install the Debian package yourself"
        )
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """One server process on ``127.0.0.1:port``; ``stop()``/``start()`` keep the port."""

    def __init__(
        self, name: str, argv: list[str], port: int, workdir: Path, *, user: str | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:  # fmt: skip
        self.name, self.argv, self.port, self.workdir, self.user = name, argv, port, workdir, user
        self.log = workdir / f"{name}.log"
        self._ready = ready or (lambda: _port_open(port))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Server:
        # A port from free_port() is free only until someone binds it: under ``pytest -n``
        # another worker's server may have taken it. Then "the port answers" would mean that
        # server, and this test would run against (and flush) a stranger's data.
        if _port_open(self.port):
            raise PortTaken(f"{self.name}: 127.0.0.1:{self.port} is already taken")
        argv = ["runuser", "-u", self.user, "--", *self.argv] if self.user else self.argv
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerFailed(
                    f"{self.name} did not start on 127.0.0.1:{self.port}; its log:\n"
                    + self.log.read_text(errors="replace")[-4000:]
                )
            time.sleep(0.05)
        time.sleep(0.1)  # a server that lost the race for its port exits right away
        if self.proc.poll() is not None:
            self.stop()
            raise PortTaken(f"{self.name} exited after 127.0.0.1:{self.port} answered")
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        deadline = time.monotonic() + 10
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        """Stop for good and remove the temporary directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _on_a_free_port(make: Callable[[int], Server], port: int | None, attempts: int = 3) -> Server:
    """``make(port)``; with no ``port`` given, on new free ports until one is really ours."""
    for attempt in range(attempts):
        try:
            return make(port or free_port())
        except PortTaken:
            if port is not None or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _workdir(prefix: str, owner: str | None = None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"sessionkit-{prefix}-"))
    if owner is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def redis_server(port: int | None = None, *extra: str, name: str = "redis") -> Server:
    def make(port: int) -> Server:
        workdir = _workdir(name)
        argv = [
            _binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(workdir), "--protected-mode",
            "yes", *extra,
        ]  # fmt: skip
        return Server(name, argv, port, workdir).start()

    return _on_a_free_port(make, port)


def _cluster_node(i: int, attempts: int = 3) -> Server:
    """One cluster master. Its two ports come from ``free_port()``, which frees them before
    redis-server binds them, so under ``pytest -n`` another worker may take one in between:
    try again on new ports (the log of the last try is in the error)."""
    for attempt in range(attempts):
        try:
            return redis_server(
                None, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000", "--cluster-port", str(free_port()),
                name=f"redis-cluster-{i}",
            )  # fmt: skip
        except ServerFailed:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def redis_cluster(masters: int = 3) -> list[Server]:
    """Three masters, no replicas, slots spread by ``redis-cli --cluster create``."""
    nodes = [_cluster_node(i) for i in range(masters)]
    addresses = [f"127.0.0.1:{node.port}" for node in nodes]
    done = subprocess.run(
        [_binary("redis-cli"), "--cluster", "create", *addresses, "--cluster-replicas", "0",
         "--cluster-yes"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        for node in nodes:
            node.stop()
        raise ServerFailed(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = subprocess.run(
            [_binary("redis-cli"), "-p", str(nodes[0].port), "cluster", "info"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        if "cluster_state:ok" in info.stdout:
            return nodes
        time.sleep(0.1)
    for node in nodes:
        node.stop()
    raise ServerFailed("the Redis cluster did not reach cluster_state:ok within 30 s")


def memcached_server(port: int | None = None) -> Server:
    def make(port: int) -> Server:
        workdir = _workdir("memcached")
        argv = [_binary("memcached"), "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        return Server("memcached", argv, port, workdir).start()

    return _on_a_free_port(make, port)


class Postgres(Server):
    """A throwaway cluster (initdb) owned by the ``postgres`` user; trust auth on loopback."""

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster) disconnects clients at once, like a real
        restart. SIGTERM via runuser is a smart shutdown that waits for every pooled client,
        is SIGKILLed after 2 s and leaves a postmaster.pid that fails the next start()."""
        pidfile = self.workdir / "data" / "postmaster.pid"
        if self.proc is not None and self.proc.poll() is None and pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGINT)
                self.proc.wait(30)
            except (ValueError, OSError, subprocess.TimeoutExpired):
                pass  # fall back to the generic stop below
        super().stop()


def postgres_server(port: int | None = None) -> Postgres:
    server = _on_a_free_port(_postgres_server, port)
    assert isinstance(server, Postgres)
    return server


def _postgres_server(port: int) -> Postgres:
    user = "postgres" if os.geteuid() == 0 else None
    workdir = _workdir("postgres", owner=user)
    bindir = Path(_binary("initdb", "/usr/lib/postgresql/*/bin/initdb", first="glob")).parent
    data = workdir / "data"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
              "--no-sync", "-E", "UTF8"]  # fmt: skip
    done = subprocess.run(
        ["runuser", "-u", user, "--", *initdb] if user else initdb,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise ServerFailed(f"initdb failed:\n{done.stdout}{done.stderr}")
    argv = [
        str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(workdir),
        "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off", "-c", "max_connections=200",
    ]  # fmt: skip

    def ready() -> bool:
        probe = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
        )  # fmt: skip
        return probe.returncode == 0

    server = Postgres("postgres", argv, port, workdir, user=user, ready=ready)
    server.start(timeout=60)
    return server


def redis_persistent(port: int | None = None) -> Server:
    """A Redis primary that keeps what it acknowledged across a stop and a start (the
    append-only file, fsynced on every write), as a production primary does. A replica that
    reconnects is resynced at once (Redis waits 5 s by default, to batch replicas)."""
    return redis_server(port, "--appendonly", "yes", "--appendfsync", "always",
                        "--repl-diskless-sync-delay", "0", name="redis-primary")  # fmt: skip


def redis_replica(primary: Server, timeout: float = 30.0) -> Server:
    """A second redis-server, ``replicaof`` ``primary`` (read-only, serving stale data
    while its primary is gone, as Redis does by default), once its link is up."""
    replica = redis_server(
        None, "--replicaof", "127.0.0.1", str(primary.port), name="redis-replica"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = subprocess.run(
            [_binary("redis-cli"), "-p", str(replica.port), "info", "replication"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        if "master_link_status:up" in info.stdout:
            return replica
        time.sleep(0.05)
    replica.close()
    raise ServerFailed(f"the replica of 127.0.0.1:{primary.port} did not link up in {timeout}s")


def postgres_standby(primary: Postgres) -> Postgres:
    """A hot standby of ``primary`` (``pg_basebackup -R``, streaming replication): a read
    replica that keeps serving reads while its primary is gone."""
    return _on_a_free_port(lambda port: _postgres_standby(primary, port), None)  # type: ignore[return-value]


def _postgres_standby(primary: Postgres, port: int) -> Postgres:
    user = "postgres" if os.geteuid() == 0 else None
    workdir = _workdir("postgres-standby", owner=user)
    bindir = Path(_binary("initdb", "/usr/lib/postgresql/*/bin/initdb", first="glob")).parent
    data = workdir / "data"
    backup = [str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
              "-U", "postgres", "-D", str(data), "-R", "-X", "stream"]  # fmt: skip
    done = subprocess.run(
        ["runuser", "-u", user, "--", *backup] if user else backup,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise ServerFailed(f"pg_basebackup failed:\n{done.stdout}{done.stderr}")
    argv = [
        str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(workdir),
        "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200",
        "-c", "hot_standby=on",
    ]  # fmt: skip

    def ready() -> bool:
        probe = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
        )  # fmt: skip
        return probe.returncode == 0

    server = Postgres("postgres-standby", argv, port, workdir, user=user, ready=ready)
    server.start(timeout=60)
    return server


def moto_server(port: int | None = None) -> Server:
    """moto's AWS emulator in server mode (``moto[server]``, from PyPI: no AWS service is
    reachable from here), serving DynamoDB on loopback, one request at a time
    (tests/moto_serial.py says why). Its own process, so it can be stopped and started
    again like the others (the emulator forgets its tables then)."""

    def make(port: int) -> Server:
        import sys

        workdir = _workdir("moto")
        script = str(Path(__file__).resolve().with_name("moto_serial.py"))
        # -I: isolated, so the script's own directory (tests/, with its flask/ package) is
        # not on sys.path to shadow the real Flask that moto's server imports
        argv = [sys.executable, "-I", script, "127.0.0.1", str(port)]
        return Server("moto", argv, port, workdir).start()

    return _on_a_free_port(make, port)
