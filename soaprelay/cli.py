"""The ``soaprelay`` command line: ``serve``, ``token`` and ``forward``.

Exit codes: 0 success, 1 the command failed at run time (e.g. the port is in
use), 2 bad arguments or config, 130 interrupted.  User errors print one line,
``soaprelay: error: ...``, on stderr and never a traceback.

This package sits above the two sides: ``serve`` runs the relay
(:func:`relay.server.run`), ``forward`` runs an on-premises forwarder from
:mod:`bindings`.  Neither of those imports the other, nor this package.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from bindings.exceptions import BindingError, ConfigurationError
from bindings.settings import ENV_VAR, connection_string_from_env, parse_connection_string
from hc.connection_string import ConnectionString
from hc.proxy import Proxy
from hc.sas import create_token
from relay import __version__
from relay.cluster.config import ClusterConfig, parse_nats_urls, parse_node_url
from relay.compiled import describe_build
from relay.config import load_config
from relay.devspace import dev_connection_string, dev_namespace
from relay.exceptions import ConfigError
from relay.namespace import NamespaceConfig

__all__ = ["build_parser", "main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_DEFAULTS = NamespaceConfig()

_DESCRIPTION = """\
A self-hosted relay for SOAP services behind a firewall, compatible with the
Azure Relay Hybrid Connections protocol."""

_SERVE_DESCRIPTION = f"""\
Run the relay. With --config FILE it serves the namespace described in that
TOML file. Without it, it serves a development namespace: any path can be
listened on with a Manage token, and the key of its RootManageSharedAccessKey
rule is generated once and kept in --state-dir. Once listening it prints the
address and (development namespace only) the connection string on stdout.
Flags override the config file. Stops on Ctrl-C or SIGTERM.

defaults: --host {_DEFAULTS.host} --port {_DEFAULTS.port} --state-dir .soaprelay"""

_TOKEN_DESCRIPTION = """\
Print a SAS token signed with the connection string's key, for the entity given
by --entity, else the connection string's EntityPath, else the namespace root
(which covers every entity).

example:
  soaprelay token --connection-string "$CS" --entity payroll --ttl 600"""

_FORWARD_DESCRIPTION = """\
Host an existing local HTTP or SOAP service behind the relay without changing
it: open an outbound connection to the relay as a listener on --entity, and
forward every request to --to.

The connections to the relay go through an HTTP CONNECT proxy when --proxy names
one, else when HTTPS_PROXY / HTTP_PROXY say so (NO_PROXY lists the exceptions).

example:
  soaprelay forward --connection-string "$CS" --entity payroll --to http://127.0.0.1:8080
  soaprelay forward --connection-string "$CS" --entity payroll --to http://127.0.0.1:8080 \
      --proxy http://user:password@proxy.corp:3128"""

_CS_HELP = f"relay connection string (default: ${ENV_VAR})"


class _UsageError(Exception):
    """Bad arguments: reported on one line with exit code 2."""


class _Failure(Exception):
    """The command could not do its job: reported on one line with exit code 1."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are exceptions, reported by :func:`main`."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``soaprelay`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        command: Callable[[argparse.Namespace], int] = args.command_handler
        return command(args)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except (_UsageError, ConfigError, ConfigurationError) as exc:
        return _report(exc, EXIT_USAGE)
    except (_Failure, BindingError) as exc:
        return _report(exc, EXIT_FAILURE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """The ``soaprelay`` argument parser with its three subcommands."""
    parser = _Parser(
        prog="soaprelay",
        description=_DESCRIPTION,
        epilog="Run 'soaprelay COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version",
                        version=f"soaprelay {__version__} ({describe_build()})")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_serve(commands)
    _add_token(commands)
    _add_forward(commands)
    return parser


def _subparser(
    commands: argparse._SubParsersAction[_Parser],
    name: str,
    summary: str,
    description: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    sub = commands.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.set_defaults(command_handler=handler)
    return sub


def _add_serve(commands: argparse._SubParsersAction[_Parser]) -> None:
    sub = _subparser(commands, "serve", "run the relay", _SERVE_DESCRIPTION, _serve)
    sub.add_argument("--config", metavar="FILE", type=Path, help="namespace config (TOML)")
    sub.add_argument("--host", metavar="H", help="listen address")
    sub.add_argument("--port", metavar="P", type=_port, help="listen port (0: any free port)")
    sub.add_argument("--tls-cert", metavar="F", type=Path, help="TLS certificate (PEM)")
    sub.add_argument("--tls-key", metavar="F", type=Path, help="TLS private key (PEM)")
    sub.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="where the development namespace keeps its key (only without --config)",
    )
    sub.add_argument(
        "--workers", metavar="N", type=_positive_int, default=1,
        help="N relay processes on one port, joined by an embedded NATS (default: 1)",
    )
    sub.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a worker
    cluster = sub.add_argument_group(
        "cluster", "relay nodes sharing one namespace over NATS (docs/cluster.md); the same"
        " keys as the config's [cluster] table, which these flags override")
    cluster.add_argument("--cluster", metavar="URLS",
                         help="NATS servers, nats://HOST:4222[,nats://...] (credentials allowed)")
    cluster.add_argument("--node-url", metavar="URL",
                         help="how listeners reach THIS node for rendezvous, http(s)://HOST:PORT")
    cluster.add_argument("--node-name", metavar="NAME", help="this node's name (default: host-port)")
    cluster.add_argument("--no-direct", action="store_true",
                         help="no direct node-to-node links: every ask crosses NATS ([cluster] direct = false)")
    sub.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.upper,
        choices=_LOG_LEVELS,
        default="INFO",
        help=f"one of {', '.join(_LOG_LEVELS)} (default: INFO)",
    )


def _add_token(commands: argparse._SubParsersAction[_Parser]) -> None:
    sub = _subparser(commands, "token", "print a SAS token", _TOKEN_DESCRIPTION, _token)
    sub.add_argument("--connection-string", metavar="CS", help=_CS_HELP)
    sub.add_argument("--entity", metavar="PATH", help="entity path the token is for")
    sub.add_argument(
        "--ttl",
        metavar="SECONDS",
        type=_positive_int,
        default=3600,
        help="lifetime in seconds (default: 3600)",
    )


def _add_forward(commands: argparse._SubParsersAction[_Parser]) -> None:
    summary = "host a local HTTP/SOAP service behind the relay"
    sub = _subparser(commands, "forward", summary, _FORWARD_DESCRIPTION, _forward)
    sub.add_argument("--connection-string", metavar="CS", help=_CS_HELP)
    sub.add_argument(
        "--entity", metavar="PATH", help="entity to listen on (default: the EntityPath)"
    )
    sub.add_argument("--to", metavar="URL", required=True, type=_http_url, help="local service")
    sub.add_argument(
        "--binding",
        choices=("webhttp",),
        default="webhttp",
        help="how requests are forwarded (default: webhttp, any HTTP passes through)",
    )
    sub.add_argument(
        "--proxy", metavar="URL", type=_proxy_url,
        help="HTTP CONNECT proxy to the relay, http://[user:password@]host:port, or 'none' "
             "(default: $HTTPS_PROXY / $HTTP_PROXY, except hosts in $NO_PROXY)",
    )


def _serve(args: argparse.Namespace) -> int:
    config = _serve_config(args)
    if (config.cluster is not None or args.workers > 1) and importlib.util.find_spec("nats") is None:
        raise _UsageError("a cluster (--cluster, --workers) needs nats-py: "
                          "pip install 'soap-relay[cluster]'")
    log_format = "%(asctime)s %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=args.log_level, format=log_format)
    # The aiohttp shell is imported only when serving.
    from relay.server import run

    def ready(base_url: str) -> None:
        print(f"soaprelay: listening on {base_url}", flush=True)
        if args.config is None:
            port = urlsplit(base_url).port or config.port
            cs = dev_connection_string(dataclasses.replace(config, port=port))
            print(f"soaprelay: connection string: {cs}", flush=True)

    try:
        if args.workers > 1:
            _serve_workers(args, config, ready)
        else:
            run(config, ready=ready, reuse_port=args.reuse_port)
    except OSError as exc:
        reason = exc.strerror or exc
        raise _Failure(f"cannot serve on {config.host}:{config.port}: {reason}") from exc
    return 0


def _serve_workers(
    args: argparse.Namespace, config: NamespaceConfig, ready: Callable[[str], None]
) -> None:
    """``--workers N``: N relay processes on one port (``soaprelay.workers``)."""
    from soaprelay.workers import WorkerFailed, run_workers

    flags = ["--host", config.host, "--log-level", args.log_level]
    if args.config is not None:
        flags += ["--config", str(args.config)]
    else:
        flags += ["--state-dir", str(args.state_dir or Path(".soaprelay"))]
    if args.tls_cert is not None:
        flags += ["--tls-cert", str(args.tls_cert), "--tls-key", str(args.tls_key)]
    if args.cluster is not None:
        flags += ["--cluster", args.cluster]
    if args.no_direct:
        flags.append("--no-direct")
    try:
        run_workers(config, args.workers, flags, ready)
    except WorkerFailed as exc:
        raise _Failure(str(exc)) from exc


def _serve_config(args: argparse.Namespace) -> NamespaceConfig:
    """The config file or the development namespace, with the flags applied."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise _UsageError("--tls-cert and --tls-key must be given together")
    for tls_file in (args.tls_cert, args.tls_key):
        if tls_file is not None and not tls_file.is_file():
            raise _UsageError(f"TLS file not found: {tls_file}")
    if args.config is not None:
        if args.state_dir is not None:
            raise _UsageError("--state-dir applies only to the development namespace, not --config")
        config = load_config(args.config)
    else:
        state_dir = args.state_dir or Path(".soaprelay")
        try:
            config = dev_namespace(state_dir)
        except OSError as exc:
            raise _Failure(f"cannot keep the development key in {state_dir}: {exc}") from exc
    overrides: dict[str, object] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.tls_cert is not None:
        overrides.update(tls_cert=str(args.tls_cert), tls_key=str(args.tls_key))
    cluster = _cluster_config(args, config.cluster)
    if cluster is not None:
        overrides["cluster"] = cluster
    return dataclasses.replace(config, **overrides)  # type: ignore[arg-type]


def _cluster_config(args: argparse.Namespace, table: ClusterConfig | None) -> ClusterConfig | None:
    """The config's ``[cluster]`` table with the cluster flags applied (or None: one node)."""
    if table is None and args.cluster is None:
        if args.node_url is not None or args.node_name is not None:
            raise _UsageError("--node-url and --node-name need --cluster (or a [cluster] table)")
        if args.no_direct and args.workers <= 1:
            raise _UsageError("--no-direct needs --cluster, --workers or a [cluster] table")
        return None
    nats = parse_nats_urls(args.cluster) if args.cluster is not None else table.nats  # type: ignore[union-attr]
    node_url = args.node_url or (table.node_url if table is not None else None)
    if node_url is None:
        raise _UsageError("--cluster needs --node-url: how listeners reach this node")
    name = args.node_name if args.node_name is not None else (table.node_name if table else "")
    direct = not args.no_direct and (table is None or table.direct)
    if table is None:
        return ClusterConfig(nats, parse_node_url(node_url), name, direct=direct)
    return dataclasses.replace(table, nats=nats, node_url=parse_node_url(node_url), node_name=name,
                               direct=direct)


def _token(args: argparse.Namespace) -> int:
    cs = _connection_string(args)
    if cs.key_name is None or cs.key is None:
        raise _UsageError("the connection string has a SharedAccessSignature, no key to sign with")
    print(create_token(cs.audience(args.entity), cs.key_name, cs.key, ttl=args.ttl))
    return 0


def _forward(args: argparse.Namespace) -> int:
    cs = _connection_string(args)
    entity = (args.entity or cs.entity_path or "").strip("/")
    if not entity:
        raise _UsageError("--entity is required (the connection string has no EntityPath)")
    # The network code is imported only when forwarding.
    from bindings.forwarder import run_forwarder

    proxy = True if args.proxy is None else (None if args.proxy == "none" else args.proxy)
    run_forwarder(cs, entity, args.to, proxy)
    return 0


def _connection_string(args: argparse.Namespace) -> ConnectionString:
    if args.connection_string is not None:
        return parse_connection_string(args.connection_string)
    if not os.environ.get(ENV_VAR, "").strip():
        raise _UsageError(f"no connection string: pass --connection-string or set {ENV_VAR}")
    return connection_string_from_env()


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _http_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


def _proxy_url(text: str) -> str:
    if text == "none":
        return text
    try:
        Proxy.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _report(exc: Exception, code: int) -> int:
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"soaprelay: error: {message}", file=sys.stderr)
    return code
