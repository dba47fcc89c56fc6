"""``infoae sweep dashboard STUDY.yaml``: optuna-dashboard on a study's own storage, while its workers
run or after they finished.

The storage is the sweep's (:func:`~infoae_pl.tuning.storage.make_storage`: the same journal file with
the same lock, SQLite file or database), shown only with its password masked. Everything is checked
before serving: a missing study file or storage, a study not in its storage, a port or host that
cannot be listened on end in one line and exit status 2; a database that does not answer in 75.
Ctrl-C stops the server quietly, with exit status 0. Optuna and optuna-dashboard are imported after
the arguments parse, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from infoae_pl.tuning.spec import StudySpec

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
PROG = "infoae sweep dashboard"
EPILOG = """examples:
  infoae sweep dashboard sweeps/beta_elbo_beta.yaml              # http://127.0.0.1:8080/dashboard/...
  infoae sweep dashboard sweeps/beta_elbo_beta.yaml --port 0     # any free port (the line printed names it)
  infoae sweep dashboard sweeps/beta_elbo_beta.yaml --storage env:INFOAE_STORAGE   # a cluster's database
Over SSH: `ssh -L 8080:127.0.0.1:8080 HOST`, then open the printed address on your machine.
Exit status: 0 stopped by Ctrl-C, 2 bad study or options, 75 database unreachable."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Watch a study in optuna-dashboard, from the storage its sweep uses.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study", help="the study YAML (see sweeps/)")
    parser.add_argument("--storage", default=None,
                        help="override the YAML's storage, as for `infoae sweep`: a journal path, a DB URL, or "
                             "env:NAME to read the URL from the environment variable NAME")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"the address to listen on (default {DEFAULT_HOST}: this machine only; whoever "
                             "reaches the dashboard can also edit or delete the study)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"the port to listen on, 1 to 65535, or 0 for any free one (default {DEFAULT_PORT})")
    return parser


def _port(text: str) -> int:
    """A TCP port for ``--port``: 0 (any free port) to 65535."""
    if not text.strip().isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 (any free port) to 65535, got {text!r}")
    return int(text)


class DashboardError(Exception):
    """Input the dashboard cannot serve; the message says which and what to do."""


def dashboard_main(argv: list[str]) -> int:
    """Serve the study's dashboard until Ctrl-C; the exit status (see the module's docstring)."""
    args = _parser().parse_args(argv)
    from infoae_pl.tuning.credentials import hide_passwords_in_argv
    from infoae_pl.tuning.outage import EXIT_DATABASE, connection_errors
    from infoae_pl.tuning.spec import StudySpecError, load_study
    from infoae_pl.tuning.storage import redact, storage_url

    if hide_passwords_in_argv():
        print(f"{PROG}: warning: a password on the command line is visible to other users of this machine; "
              "export INFOAE_STORAGE=URL and pass --storage env:INFOAE_STORAGE", file=sys.stderr)
    try:
        spec = load_study(args.study, storage=args.storage)
        storage = open_storage(spec, args.study)
        study_id, trials = find_study(spec, storage, args.study)
        server = listen(args.host, args.port, storage)
    except Exception as error:
        cause = next(connection_errors(error), None)
        if cause is not None:
            reason = redact(str(getattr(cause, "orig", None) or cause).strip().splitlines()[0])
            print(f"{PROG}: the study's database did not answer ({reason}); run this again once it does",
                  file=sys.stderr)
            return EXIT_DATABASE
        if not isinstance(error, (StudySpecError, DashboardError)):
            raise
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    url = study_address(args.host, server.server_address[1], study_id)
    print(f"{PROG}: study {spec.study_name} ({trials} trials) in {redact(storage_url(spec))} at {url} "
          "— Ctrl-C stops it", flush=True)
    serve(server)
    return 0


def open_storage(spec: StudySpec, study_file: str) -> BaseStorage:
    """The study's storage as its sweep opens it; a journal or SQLite file that does not exist yet is
    refused rather than created (``study_file``: the study YAML, which the message names)."""
    from sqlalchemy.engine import make_url

    from infoae_pl.tuning.storage import make_storage, redact, storage_url

    url = storage_url(spec)
    if "://" not in url:
        path = Path(url)
    elif url.startswith("sqlite:") and make_url(url).database not in (None, "", ":memory:"):
        path = Path(str(make_url(url).database))
    else:
        path = None
    if path is not None and not path.is_file():
        raise DashboardError(f"no study yet: {redact(url)} does not exist; start it with `infoae sweep {study_file}`")
    return make_storage(spec)


def find_study(spec: StudySpec, storage: BaseStorage, study_file: str) -> tuple[int, int]:
    """The study's id in ``storage`` and its number of trials (every state, as the dashboard lists them)."""
    from infoae_pl.tuning.storage import redact, storage_url

    try:
        study_id = storage.get_study_id_from_name(spec.study_name)
    except KeyError:
        names = sorted(s.study_name for s in storage.get_all_studies())
        held = ", ".join(map(repr, names)) or "none"
        raise DashboardError(f"no study {spec.study_name!r} in {redact(storage_url(spec))} (it holds {held}); "
                             f"start it with `infoae sweep {study_file}`") from None
    return study_id, len(storage.get_all_trials(study_id, deepcopy=False))


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's request handler without its line per request on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        """Say nothing: the dashboard polls the server every few seconds."""


class _Server(ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request (the page loads several at once); a browser that goes
    away mid-answer is not an error."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """socketserver's traceback on stderr, unless the browser closed the connection."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Server6(_Server):
    """:class:`_Server` on an IPv6 address."""

    address_family = socket.AF_INET6


def listen(host: str, port: int, storage: BaseStorage) -> WSGIServer:
    """optuna-dashboard's app on ``storage``, bound to ``host:port`` (not yet serving)."""
    import optuna_dashboard

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = _Server6 if family == socket.AF_INET6 else _Server
        return make_server(host, port, optuna_dashboard.wsgi(storage), server_class=server_class,
                           handler_class=_QuietHandler)
    except OSError as error:
        reason = "in use; choose another --port" if error.errno == errno.EADDRINUSE else error.strerror or error
        raise DashboardError(f"cannot listen on {host}:{port} (--host, --port): {reason}") from None


def study_address(host: str, port: int, study_id: int) -> str:
    """The address of the study's page (a wildcard host shown as this machine's name)."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/dashboard/studies/{study_id}"


def serve(server: WSGIServer) -> None:
    """Serve until Ctrl-C, which stops the server without a word."""
    from infoae_pl.tuning.interrupts import interrupt_taken, quiet_interrupt

    with quiet_interrupt():
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            interrupt_taken()
        finally:
            server.server_close()
