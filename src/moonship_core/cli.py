"""The `moonship` command: `run`, `init`, `config check`, `plugins list`, `orders`, `fills`, `halt`,
`reduce`, `resume`, `status`, `strategy start|stop`, `new-algo`, `hash-password`, `record`, `backtest`,
and the original's bare flags."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import importlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import MoonshipConfig, RedisConfig, configure_logging, load_config_checked, validate_sections
from .contracts.stores import Journal
from .errors import ConfigError
from .model import fmt_decimal
from .plugins import SERVICE_DISTRIBUTIONS, Plugins, install_command
from .preflight import check
from .tables import aligned

if TYPE_CHECKING:
    from .control import ControlPlane

PROG = "moonship"
COMMANDS = (
    "run", "init", "config", "plugins", "orders", "fills", "halt", "reduce", "resume", "status", "strategy",
    "new-algo", "hash-password", "record", "backtest",
)
#: the trading state each trading-state command puts an engine or a strategy in
TRADING_STATES = {"halt": "HALTED", "reduce": "REDUCING", "resume": "ACTIVE"}
DEFAULT_CONFIG = "config.yml"
INIT_HINT = f"run `{PROG} init` to write a starter config (paper trading, no keys needed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args and not Path(DEFAULT_CONFIG).exists():
        _parser().print_usage(sys.stderr)
        print(f"{PROG}: no {DEFAULT_CONFIG} here: {INIT_HINT}, then `{PROG} run`", file=sys.stderr)
        return 2
    if not args or (args[0] not in COMMANDS and args[0] not in ("-h", "--help", "-V", "--version")):
        args.insert(0, "run")  # the original's bare form: `moonship [-a] [-m] [-e] -c FILE`
    try:
        options = _parser().parse_args(args)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 1
    try:
        if options.command == "plugins":
            return _plugins_list()
        if options.command == "init":
            return _init(options)
        if options.command == "new-algo":
            return _new_algo(options)
        if options.command == "hash-password":
            return _hash_password()
        if options.command in ("orders", "fills"):
            return asyncio.run(_journal(_load(options.config), options))
        if options.command in TRADING_STATES:
            return asyncio.run(_trading_state(_load(options.config), options))
        if options.command == "status":
            return asyncio.run(_status(_load(options.config), options))
        if options.command == "strategy":
            return asyncio.run(_strategy(_load(options.config), options))
        if options.command in ("record", "backtest"):
            return _record_or_backtest(options)
        config, problems = _load_checked(options.config)
        if options.command == "config":
            return _config_check(config, problems, options)
        return _run(config, problems, options)
    except ConfigError as exc:
        print(f"{PROG}: config error:\n{exc}", file=sys.stderr)
        return 2


def _load(path: str) -> MoonshipConfig:
    config, problems = _load_checked(path)
    if problems or config is None:
        raise ConfigError("\n".join(problems))
    return config


def _load_checked(path: str) -> tuple[MoonshipConfig | None, list[str]]:
    if not Path(path).exists():
        raise ConfigError(f"config file not found: {path} ({INIT_HINT})")
    return load_config_checked(path)


def _parser() -> argparse.ArgumentParser:
    version = argparse.ArgumentParser(add_help=False)
    version.add_argument(
        "-V", "--version", action="version", version=f"{PROG}-core {metadata.version('moonship-core')}"
    )
    # given before or after the command: SUPPRESS keeps a subcommand from resetting the top level's value
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at DEBUG"
    )
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="log warnings and errors only"
    )
    config_file = argparse.ArgumentParser(add_help=False)
    config_file.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=DEFAULT_CONFIG,
        help=f"the YAML config (default {DEFAULT_CONFIG})",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[version, verbosity],
        description="Moonship crypto trading: engine, API and monitor services. "
        f"New here? `{PROG} init`, then `{PROG} run`.",
    )
    parser.set_defaults(verbose=False, quiet=False)
    commands = parser.add_subparsers(dest="command", required=True)
    service_flags = argparse.ArgumentParser(add_help=False)
    service_flags.add_argument("-e", "--engine", action="store_true", help="the trading engine")
    service_flags.add_argument("-a", "--api", action="store_true", help="the API service")
    service_flags.add_argument("-m", "--monitor", action="store_true", help="the monitor service")
    commands.add_parser(
        "run",
        parents=[version, verbosity, config_file, service_flags],
        help="run services (default: the engine alone)",
        description="Run services in one process. Without -a or -m the engine runs alone.",
    )
    init = commands.add_parser(
        "init",
        parents=[config_file],
        help="write a commented starter config",
        description="Write a commented starter config: paper trading over the offline sim market, or with "
        "--exchange over that exchange's live market data (no keys needed).",
    )
    init.add_argument("--exchange", metavar="NAME", help="an installed exchange plugin's client (e.g. valr)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    new_algo = commands.add_parser(
        "new-algo",
        help="scaffold an installable algo plugin project",
        description="Write DIR/NAME: an algo plugin project (pyproject with the entry point, the package, a "
        "settings model, a test, a config) that `pip install` installs and `moonship run` runs.",
    )
    new_algo.add_argument("name", metavar="NAME", help="the algo's (and its package's) name, e.g. dipper")
    new_algo.add_argument("--dir", metavar="DIR", default=".", help="where to create it (default: here)")
    commands.add_parser(
        "hash-password",
        help="print the bcrypt hash of a password, for moonship.api.password",
        description="Read a password (asked twice on a terminal, else one line of stdin) and print its "
        "bcrypt hash for moonship.api.password.",
    )
    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser(
        "check",
        parents=[config_file, service_flags],
        help="validate a config without running it",
        description="Run every validation `run` with the same -e/-a/-m does, start nothing, and list every "
        "problem (exit 2).",
    )
    plugin = commands.add_parser("plugins", help="plugin tools")
    plugin_commands = plugin.add_subparsers(dest="plugins_command", required=True)
    plugin_commands.add_parser("list", help="list the installed plugins and what they provide")
    journal_query = argparse.ArgumentParser(add_help=False, parents=[config_file])
    journal_query.add_argument("--strategy", metavar="S", help="only this strategy's")
    journal_query.add_argument("--limit", metavar="N", type=int, default=100, help="at most N rows (100)")
    journal_query.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    orders = commands.add_parser(
        "orders", parents=[journal_query], help="the journal's orders, newest first"
    )
    orders.add_argument("--open", action="store_true", help="only open orders")
    fills = commands.add_parser("fills", parents=[journal_query], help="the journal's fills, newest first")
    fills.add_argument("--since", metavar="ISO", type=_iso_time, help="only fills at or after this time")
    for command, state in TRADING_STATES.items():
        change = commands.add_parser(
            command,
            parents=[config_file],
            help=f"put a running engine (or one strategy) in trading state {state}",
            description=(
                f"Put a running engine, or one of its strategies, in trading state {state}, through the "
                "message bus (needs moonship.redis.url). Answers once the state is in force."
            ),
        )
        change.add_argument("--engine", metavar="E", help="the engine (default: moonship.engine.name)")
        change.add_argument("--strategy", metavar="S", help="only this strategy (default: the whole engine)")
        change.add_argument("--reason", metavar="R", default="", help="why (shown in the trading state)")
    remote = (
        "through Redis when the config has moonship.redis.url, otherwise through the running process's API "
        "(moonship.api.host/port; credentials from MOONSHIP_API_USER and MOONSHIP_API_PASSWORD)"
    )
    status = commands.add_parser(
        "status", parents=[config_file], help="running engines and their strategies",
        description=f"Every running engine and its strategies: state, position, P/L, open orders; {remote}.",
    )
    status.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    strategy = commands.add_parser(
        "strategy", parents=[config_file], help="start or stop a strategy of a running engine",
        description=f"Start or stop a strategy of a running engine; {remote}.",
    )
    strategy.add_argument("action", choices=("start", "stop"))
    strategy.add_argument("engine", metavar="ENGINE")
    strategy.add_argument("strategy", metavar="STRATEGY")
    record = commands.add_parser(
        "record",
        parents=[verbosity, config_file],
        help="record every configured market's raw input for backtests",
        description="Record every market of the config (REST snapshots and every websocket frame, as "
        "received) into DIR until the duration ends or Ctrl-C; no strategy runs.",
    )
    record.add_argument("--out", metavar="DIR", required=True, help="the recording directory")
    record.add_argument("--duration", metavar="SECONDS", type=float, help="stop after this many seconds")
    backtest = commands.add_parser(
        "backtest",
        parents=[verbosity, config_file],
        help="run the config's strategies over a recording",
        description="Run the config's auto-start strategies over a recording (moonship record) on the paper "
        "fill model, under simulated time; write report.json, trades.csv, equity.csv, report.html and "
        "run.json into OUTDIR.",
    )
    backtest.add_argument("--data", metavar="DIR", required=True, help="the recording directory")
    backtest.add_argument("--out", metavar="OUTDIR", required=True, help="where the report goes")
    backtest.add_argument("--from", dest="start", metavar="ISO", type=_iso_time, help="replay from this time")
    backtest.add_argument("--to", dest="end", metavar="ISO", type=_iso_time, help="replay up to this time")
    backtest.add_argument(
        "--latency", metavar="MS", type=Decimal, default=Decimal(0),
        help="milliseconds before an order or a cancel reaches the simulated book (0)",
    )
    return parser


def _record_or_backtest(options: argparse.Namespace) -> int:
    config = _load(options.config)
    configure_logging(config)
    level = logging.DEBUG if options.verbose else logging.WARNING if options.quiet else None
    if options.command == "backtest":
        level = level or logging.WARNING  # the progress bar and the summary tell the story
        from .backtest.command import backtest

        if options.latency < 0:
            raise ConfigError("--latency: must be 0 or more milliseconds")
        logging.getLogger("moonship").setLevel(level)
        return asyncio.run(backtest(
            config, Path(options.data), Path(options.out), start=options.start, end=options.end,
            latency_ms=options.latency, plugins=Plugins.load(),
        ))
    from .record.command import record

    if level is not None:
        logging.getLogger("moonship").setLevel(level)
    return asyncio.run(record(config, Path(options.out), options.duration, Plugins.load()))


def _init(options: argparse.Namespace) -> int:
    from .scaffold import starter_config, write_starter_config

    try:
        text = starter_config(Plugins.load(), options.exchange)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    path = Path(options.config)
    try:
        write_starter_config(path, text, force=options.force)
    except FileExistsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    what = f"{options.exchange}'s live market data" if options.exchange else "the offline sim market"
    run = f"{PROG} run" + ("" if options.config == DEFAULT_CONFIG else f" -c {options.config}")
    print(f"wrote {path}: paper trading over {what}. Next: {run}")
    return 0


def _new_algo(options: argparse.Namespace) -> int:
    from .scaffold import write_algo_project

    try:
        root = write_algo_project(options.name, Path(options.dir))
    except (ValueError, FileExistsError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {root}. Next:\n  cd {root}\n  pip install -e '.[test]'\n  pytest\n"
        f"  moonship run -c config.yml"
    )
    return 0


def _hash_password() -> int:
    try:  # bcrypt comes with the API plugin, the one that checks the hash
        bcrypt: Any = importlib.import_module("bcrypt")
    except ImportError:
        print(f"{PROG}: hash-password needs bcrypt: pip install moonship-api", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat it: ") != password:
            print(f"{PROG}: the two passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print(f"{PROG}: empty password", file=sys.stderr)
        return 1
    secret = password.encode()
    if len(secret) > 72:  # bcrypt uses the first 72 bytes only (and newer versions refuse more)
        print(f"{PROG}: the password is longer than bcrypt's 72 bytes", file=sys.stderr)
        return 1
    hashed: bytes = bcrypt.hashpw(secret, bcrypt.gensalt())
    print(hashed.decode())
    return 0


def _iso_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


#: the columns of `moonship orders` and `moonship fills`: (heading, field)
ORDER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("UPDATED", "updated"), ("STRATEGY", "strategy"), ("MARKET", "market"), ("SIDE", "side"),
    ("TYPE", "type"), ("STATUS", "status"), ("QUANTITY", "quantity"), ("PRICE", "price"),
    ("FILLED", "filled_quantity"), ("AVG PRICE", "average_price"), ("CLIENT ORDER ID", "client_order_id"),
)
FILL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TIME", "time"), ("STRATEGY", "strategy"), ("MARKET", "market"), ("SIDE", "side"), ("PRICE", "price"),
    ("QUANTITY", "quantity"), ("FEE", "fee"), ("FEE ASSET", "fee_asset"),
    ("CLIENT ORDER ID", "client_order_id"),
)


async def _journal(config: MoonshipConfig, options: argparse.Namespace) -> int:
    """`moonship orders` / `moonship fills`: read the engine's journal directly (running or not)."""
    from .codec import fill_record_to_dict, json_dumps, order_record_to_dict
    from .stores.sqlite import SqliteJournal

    journal: Journal
    if config.journal_backend == "redis":
        from .stores.redis import RedisJournal

        assert config.redis.url is not None  # the config check requires it for a redis journal
        journal = RedisJournal(config.redis.url, config.engine.name, verify_cert=config.redis.ssl_verify_cert)
    else:
        if not config.journal_path.exists():
            print(f"{PROG}: no journal at {config.journal_path} (has the engine run here?)", file=sys.stderr)
            return 1
        journal = SqliteJournal(config.journal_path)
    await journal.open()
    try:
        if options.command == "orders":
            records = await journal.orders(
                strategy=options.strategy, open_only=options.open, limit=options.limit
            )
            rows, columns = [order_record_to_dict(r) for r in records], ORDER_COLUMNS
        else:
            fills = await journal.fills(strategy=options.strategy, since=options.since, limit=options.limit)
            rows, columns = [fill_record_to_dict(f) for f in fills], FILL_COLUMNS
    finally:
        await journal.close()
    if options.json:
        for row in rows:
            print(json_dumps(row).decode())
    else:
        cells = [[_cell(row[field]) for _, field in columns] for row in rows]
        print(aligned([[heading for heading, _ in columns], *cells]))
    return 0


@contextlib.asynccontextmanager
async def _redis_control(redis: RedisConfig, url: str) -> AsyncIterator[ControlPlane]:
    """ControlPlane over Redis at `url` (cache and bus opened here, closed on exit)."""
    from .control import ControlPlane
    from .stores.redis import RedisBus, RedisCache

    cache = RedisCache(url, verify_cert=redis.ssl_verify_cert, protocol=redis.protocol)
    bus = RedisBus(url, verify_cert=redis.ssl_verify_cert, protocol=redis.protocol)
    try:
        await cache.open()
        await bus.open()
        yield ControlPlane(cache, bus)
    finally:
        for part in (bus, cache):
            with contextlib.suppress(Exception):
                await part.close()


async def _trading_state(config: MoonshipConfig, options: argparse.Namespace) -> int:
    """`moonship halt|reduce|resume`: the trading-state command to the running engine, over Redis."""
    from .errors import ControlError

    engine = options.engine or config.engine.name
    if not config.redis.url:
        print(
            f"{PROG} {options.command}: moonship.redis.url is not set in {options.config}, so there is no "
            "message bus to reach a running engine through (without Redis an engine takes commands only "
            "inside its own process). Set redis.url, or use the API of the process that runs the engine: "
            f"POST /engines/{engine}/trading-state",
            file=sys.stderr,
        )
        return 2
    state = TRADING_STATES[options.command]
    try:
        async with _redis_control(config.redis, config.redis.url) as control:
            result = await control.trading_state(engine, state, options.reason, options.strategy)
    except (ControlError, ConnectionError, OSError) as exc:
        print(f"{PROG} {options.command}: {exc}", file=sys.stderr)
        return 1
    who = f"strategy {options.strategy} of engine {engine}" if options.strategy else f"engine {engine}"
    shown = result.get("trading_state") if isinstance(result, dict) else state
    reason = result.get("trading_state_reason") if isinstance(result, dict) else None
    print(f"{who}: {shown}" + (f" ({reason})" if reason else ""))
    return 0


STATUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ENGINE", "engine"), ("STRATEGY", "name"), ("ACTIVE", "active"), ("TRADING STATE", "trading_state"),
    ("POSITION", "position"), ("P/L", "total_profit"), ("OPEN ORDERS", "open_orders"),
)


@contextlib.asynccontextmanager
async def _control(config: MoonshipConfig) -> AsyncIterator[Any]:
    """The control facade for a running engine: ControlPlane over Redis when configured, else ApiControl
    over the API (ConfigError without credentials)."""
    if config.redis.url:
        async with _redis_control(config.redis, config.redis.url) as control:
            yield control
        return
    from .remote import ApiControl

    user, password = os.environ.get("MOONSHIP_API_USER"), os.environ.get("MOONSHIP_API_PASSWORD")
    if not user or not password:
        raise ConfigError(
            "no moonship.redis.url: the running process's API is used, which needs MOONSHIP_API_USER and "
            "MOONSHIP_API_PASSWORD set"
        )
    async with ApiControl.from_config(config, user, password) as api:
        yield api


async def _status(config: MoonshipConfig, options: argparse.Namespace) -> int:
    """`moonship status`: every running engine and its strategies."""
    from .codec import json_dumps
    from .errors import ControlError

    try:
        async with _control(config) as control:
            engines = await control.engine_states()
            strategies = await control.strategies()
    except (ControlError, ConnectionError, OSError) as exc:
        print(f"{PROG} status: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if options.json:
        print(json_dumps({"engines": engines, "strategies": strategies}).decode())
        return 0
    rows = [["ENGINE", "TRADING STATE", "STARTED"]]
    for engine in engines:
        state = engine.get("trading_state") or "ACTIVE"
        reason = engine.get("trading_state_reason")
        shown = f"{state} ({reason})" if reason else state
        rows.append([engine["name"], shown, _cell(engine.get("started"))])
    print(aligned(rows))
    print()
    cells = [[_cell(info.get(field)) for _, field in STATUS_COLUMNS] for info in strategies]
    print(aligned([[heading for heading, _ in STATUS_COLUMNS], *cells]))
    return 0


async def _strategy(config: MoonshipConfig, options: argparse.Namespace) -> int:
    """`moonship strategy start|stop ENGINE STRATEGY`."""
    from .errors import ControlError

    try:
        async with _control(config) as control:
            command = control.start if options.action == "start" else control.stop
            info = await command(options.engine, options.strategy)
    except (ControlError, ConnectionError, OSError) as exc:
        print(f"{PROG} strategy {options.action}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    active = info.get("active") if isinstance(info, dict) else None
    print(f"strategy {options.strategy} of engine {options.engine}: {'active' if active else 'stopped'}")
    return 0


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return fmt_decimal(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _services(options: argparse.Namespace) -> list[str]:
    """The services -e/-a/-m select (the engine alone without any)."""
    return [
        name
        for name, wanted in (
            ("engine", options.engine or not (options.api or options.monitor)),
            ("api", options.api),
            ("monitor", options.monitor),
        )
        if wanted
    ]


def _run(config: MoonshipConfig | None, problems: list[str], options: argparse.Namespace) -> int:
    services = _services(options)
    if config is None:
        raise ConfigError("\n".join(problems))
    configure_logging(config)
    if options.verbose or options.quiet:
        logging.getLogger("moonship").setLevel(logging.DEBUG if options.verbose else logging.WARNING)
    plugins = Plugins.load()
    for name in services:
        if name != "engine" and name not in plugins.names("services"):
            distribution = SERVICE_DISTRIBUTIONS[name]
            install = install_command(distribution)
            print(
                f"{PROG}: the {name!r} service needs the {distribution} plugin ({install})",
                file=sys.stderr,
            )
            return 2
    from .checks import check

    problems = problems + check(config, plugins, services)  # every problem, before anything starts
    if problems:
        raise ConfigError("\n".join(problems))
    launcher = importlib.import_module("moonship_core.launcher")  # imported late: it pulls in the engine
    exit_code: int = launcher.run(config, plugins, services)
    return exit_code


def _config_check(config: MoonshipConfig | None, problems: list[str], options: argparse.Namespace) -> int:
    """Every validation `run` makes (exit 2 on any), then what start-up would check: Redis reachable and
    authenticated (when `redis.url` is set) and each configured service's preflight (the API's certificate,
    key and port)."""
    from .checks import check as validate

    plugins = Plugins.load()
    if config is not None:
        problems = problems + validate(config, plugins, _services(options))
    if problems or config is None:
        raise ConfigError("\n".join(problems))
    environment = asyncio.run(check(config, plugins, validate_sections(config, plugins.section_models())))
    if environment:
        return environment.report(PROG)
    print(f"OK: {len(config.markets)} markets, {len(config.strategies)} strategies")
    return 0


def _plugins_list() -> int:
    """Every plugin and what it provides, each reference imported: a broken one is marked, and a plugin
    that failed to load or a broken reference exits 1."""
    plugins = Plugins.load()
    broken = plugins.broken()
    rows = [["PLUGIN", "DISTRIBUTION", "VERSION", "PROVIDES"]]
    for info in plugins.describe():
        provides = "; ".join(
            f"{kind}: {', '.join(n + (' (BROKEN)' if (kind, n) in broken else '') for n in names)}"
            for kind, names in info.provides.items()
            if names
        )
        rows.append([info.name, info.distribution or "-", info.version or "-", provides or "-"])
    print(aligned(rows))
    if broken:
        print("\nBroken:")
        for (kind, name), error in sorted(broken.items()):
            print(f"  {kind} {name}: {error}")
    if plugins.failures:
        print("\nFailed plugins:")
        for failure in plugins.failures:
            print(f"  {failure.name} ({failure.distribution or '-'}): {failure.error}")
    return 1 if plugins.failures or broken else 0
