"""moto's server for the dev stack, in a child process on 127.0.0.1 (``python -m orb_bridge_dev.devstack.moto_server``).

moto's app runs behind our loopback guard (``loopback_guard``): moto authenticates nobody and
answers CORS, so without it any web page could send to the ingest queue. boto3 clients send
``Host: 127.0.0.1:PORT`` and no ``Origin``, and pass.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading

from orb_bridge_dev.devstack.moto_dispatch_speedup import speed_up_moto_dispatch
from orb_bridge_dev.devstack.moto_dynamodb_atomic import make_moto_dynamodb_writes_atomic
from orb_bridge_dev.devstack.moto_sqs_speedup import speed_up_moto_sqs
from orb_bridge_dev.loopback_guard import LoopbackGuard


class MotoServerProcess:
    """moto's server in a child process on 127.0.0.1.

    Its own process, so moto's work runs on another core than the handlers, the poller and the
    sandbox instead of competing with them for one interpreter lock (3-4x the dev stack's
    throughput on two cores). The child exits when its stdin closes, so it never outlives us.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "orb_bridge_dev.devstack.moto_server", "--serve-moto", "--port", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        stdout = self._process.stdout
        assert stdout is not None
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        line = ready[0].strip() if ready else ""
        if not line.startswith("moto listening on "):
            self.stop()
            raise RuntimeError(f"moto's server did not start (got {line!r})")
        self.port = int(line.rsplit(":", 1)[1])

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def get_host_and_port(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin:
                process.stdin.close()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(timeout=5)
        if process.stdout:
            process.stdout.close()


def serve_moto(port: int) -> None:
    """The child process: moto's server until stdin closes."""
    speed_up_moto_sqs()
    speed_up_moto_dispatch()
    make_moto_dynamodb_writes_atomic()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    # werkzeug logs every request moto serves (the poller makes many): keep the terminal readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # What moto's ThreadedMotoServer builds, with the guard in front of moto's app.
    app = LoopbackGuard(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    print(f"moto listening on 127.0.0.1:{server.port}", flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        thread.join(5)


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(description="moto's server for the dev stack (exits when stdin closes)")
    _parser.add_argument("--serve-moto", action="store_true", required=True)
    _parser.add_argument("--port", type=int, default=0)
    # Ctrl-C in the terminal reaches the whole process group: let the parent stop us instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve_moto(_parser.parse_args().port)
