"""The `moonship` command: `run`, `config check`, `plugins list`, `orders`, `fills`, `halt`, `reduce`,
`resume`, and the original's bare flags."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from importlib import metadata

from .config import MoonshipConfig, configure_logging, load_config
from .contracts.stores import Journal
from .errors import ConfigError
from .model import fmt_decimal
from .plugins import SERVICE_DISTRIBUTIONS, Plugins, install_command
from .preflight import check

PROG = "moonship"
COMMANDS = ("run", "config", "plugins", "orders", "fills", "halt", "reduce", "resume")
#: the trading state each trading-state command puts an engine or a strategy in
TRADING_STATES = {"halt": "HALTED", "reduce": "REDUCING", "resume": "ACTIVE"}
DEFAULT_CONFIG = "config.yml"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0] not in COMMANDS and args[0] not in ("-h", "--help", "-v", "--version")):
        args.insert(0, "run")  # the original's bare form: `moonship [-a] [-m] [-e] -c FILE`
    try:
        options = _parser().parse_args(args)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 1
    try:
        if options.command == "plugins":
            return _plugins_list()
        config = load_config(options.config)
        if options.command == "config":
            return _config_check(config)
        if options.command in ("orders", "fills"):
            return asyncio.run(_journal(config, options))
        if options.command in TRADING_STATES:
            return asyncio.run(_trading_state(config, options))
        return _run(config, options)
    except ConfigError as exc:
        print(f"{PROG}: config error:\n{exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    version = argparse.ArgumentParser(add_help=False)
    version.add_argument(
        "-v", "--version", action="version", version=f"{PROG}-core {metadata.version('moonship-core')}"
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
        prog=PROG, parents=[version], description="Moonship crypto trading: engine, API and monitor services."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        parents=[version, config_file],
        help="run services (default: the engine alone)",
        description="Run services in one process. Without -a or -m the engine runs alone.",
    )
    run.add_argument("-e", "--engine", action="store_true", help="run the trading engine")
    run.add_argument("-a", "--api", action="store_true", help="run the API service")
    run.add_argument("-m", "--monitor", action="store_true", help="run the monitor service")
    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser("check", parents=[config_file], help="validate a config without running it")
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
    return parser


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
        _print_table([[heading for heading, _ in columns], *cells])
    return 0


async def _trading_state(config: MoonshipConfig, options: argparse.Namespace) -> int:
    """`moonship halt|reduce|resume`: the trading-state command to the running engine, over Redis."""
    from .control import ControlPlane
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
    from .stores.redis import RedisBus, RedisCache

    redis, url = config.redis, config.redis.url
    cache = RedisCache(url, verify_cert=redis.ssl_verify_cert, protocol=redis.protocol)
    bus = RedisBus(url, verify_cert=redis.ssl_verify_cert, protocol=redis.protocol)
    try:
        await cache.open()
        await bus.open()
        control = ControlPlane(cache, bus)
        state = TRADING_STATES[options.command]
        result = await control.trading_state(engine, state, options.reason, options.strategy)
    except (ControlError, ConnectionError, OSError) as exc:
        print(f"{PROG} {options.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        for part in (bus, cache):
            with contextlib.suppress(Exception):
                await part.close()
    who = f"strategy {options.strategy} of engine {engine}" if options.strategy else f"engine {engine}"
    shown = result.get("trading_state") if isinstance(result, dict) else state
    reason = result.get("trading_state_reason") if isinstance(result, dict) else None
    print(f"{who}: {shown}" + (f" ({reason})" if reason else ""))
    return 0


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return fmt_decimal(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _run(config: MoonshipConfig, options: argparse.Namespace) -> int:
    services = [
        name
        for name, wanted in (
            ("engine", options.engine or not (options.api or options.monitor)),
            ("api", options.api),
            ("monitor", options.monitor),
        )
        if wanted
    ]
    configure_logging(config)
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
    plugins.check(config, resolve="engine" in services)
    launcher = importlib.import_module("moonship_core.launcher")  # imported late: it pulls in the engine
    exit_code: int = launcher.run(config, plugins, services)
    return exit_code


def _config_check(config: MoonshipConfig) -> int:
    """Validate `config`, then check what start-up would: Redis reachable and authenticated (when
    `redis.url` is set) and each configured service's preflight (the API's certificate, key and port)."""
    plugins = Plugins.load()
    sections = plugins.check(config)
    problems = asyncio.run(check(config, plugins, sections))
    if problems:
        return problems.report(PROG)
    print(f"OK: {len(config.markets)} markets, {len(config.strategies)} strategies")
    return 0


def _plugins_list() -> int:
    plugins = Plugins.load()
    rows = [["PLUGIN", "DISTRIBUTION", "VERSION", "PROVIDES"]]
    for info in plugins.describe():
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.provides.items() if names)
        rows.append([info.name, info.distribution or "-", info.version or "-", provides or "-"])
    _print_table(rows)
    if plugins.failures:
        print("\nFailed plugins:")
        for failure in plugins.failures:
            print(f"  {failure.name} ({failure.distribution or '-'}): {failure.error}")
    return 0
