"""Starts moto's server on loopback with the strict-IAM extensions and the
EmulatorApp middleware in front of it."""

from __future__ import annotations

import functools
import logging
import os

from threading import Thread

from werkzeug.serving import ThreadedWSGIServer
from moto import backends
from moto.core import responses
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

from emulator import EmulatorApp, extend_moto


# One line per request drowns the demo and test output; errors still show.
logging.getLogger("werkzeug").setLevel(logging.ERROR)


class Server(ThreadedWSGIServer):
    # werkzeug listens with a backlog of 128 (werkzeug/serving.py LISTEN_QUEUE).
    # A thousand function processes opening connections at once overflowed it:
    # their SDKs saw "HTTP connect timeout occurred after 3.1s" and "Connection
    # refused" on the budget's UpdateItem and on STS (3,712 and 194 such errors
    # in the functions' logs of two 1,000-offboarding runs). The kernel caps it
    # at net.core.somaxconn (4096 here).
    request_queue_size = 4096


def _look_up_once() -> None:
    """Two lookups moto's server repeats on every request, for answers that
    never change while it runs: which folders of moto's package are services
    (moto/backends.py ``list_of_moto_modules``: a directory listing and an
    ``isdir`` per entry, from werkzeug_app.py ``get_backend_for_host``) and
    which methods a response class has (moto/core/utils.py
    ``method_names_from_class``: ``inspect.getmembers``, from responses.py
    ``call_action``). With 300 offboardings at once, py-spy --gil put 8.5 % of
    the interpreter's time in them."""
    if getattr(backends, "_offboard_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)
    backends._offboard_cached = True


class EmulatorServer:
    def __init__(self, port: int = 0, ssl_context=None):
        # Real IAM has every AWS managed policy, AWSDenyAll included
        # (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSDenyAll.html);
        # stock moto loads them only when asked (moto/settings.py).
        os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        extend_moto()
        _look_up_once()
        self.app = EmulatorApp(DomainDispatcherApplication(create_backend_app))
        self.server = Server("127.0.0.1", port, self.app, handler=MotoRequestHandler, ssl_context=ssl_context)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"
        self.thread = Thread(target=self.server.serve_forever, daemon=True)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()


def start(port: int = 0, ssl_context=None) -> EmulatorServer:
    """``ssl_context``: serve HTTPS (bench/bench.py's first-call latency)."""
    server = EmulatorServer(port, ssl_context)
    server.thread.start()
    return server
