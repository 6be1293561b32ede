"""moto's DynamoDB emulator in server mode, answering one request at a time.

``python tests/moto_serial.py HOST PORT`` serves moto's own WSGI application (what
``moto_server`` serves) through werkzeug, as ``moto_server`` does, with one difference:
a lock around each request. moto's backend takes no lock of its own, so under concurrent
requests its conditional writes and transactions are neither atomic nor isolated (a
cancelled ``TransactWriteItems`` restores a copy of the whole table, undoing what other
requests wrote meanwhile). DynamoDB documents both guarantees; one request at a time is
how the emulator keeps them, so the store's concurrency tests test the store, not moto.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def serial_app() -> Any:
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with lock:  # the whole answer is made inside the lock
            return list(app(environ, start_response))

    return serve


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, serial_app(), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
