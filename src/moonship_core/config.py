"""Configuration: YAML with exact decimals, `$NAME` environment values, pydantic models, logging."""

from __future__ import annotations

import logging.config
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)
from pydantic_core import ErrorDetails

from .errors import ConfigError
from .limits import STRATEGY_NAME_RULE, printable, valid_strategy_name

ROOT = "moonship"
CANDLE_PERIODS = (0, 60, 300, 900, 1800, 3600, 86400)
LOG_FORMAT = "[%(asctime)s] %(levelname)s - %(name)s: %(message)s"

_ENV_REF = re.compile(r"^\$(\$*[A-Za-z_][A-Za-z0-9_]*)$")
_SPECIAL_FLOATS = {".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity", ".nan": "NaN"}
#: what a secret value is shown as in StrategyInfo, the API and logs
MASK = "***"

#: where a value sits in the config: keys and list indexes from the `moonship` root
Location = tuple[str | int, ...]


class _DecimalLoader(yaml.SafeLoader):
    """A safe YAML loader that reads floats as exact `Decimal`s."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    special = _SPECIAL_FLOATS.get(text.lower())
    if special is not None:
        return Decimal(special)
    if ":" in text:  # YAML 1.1 sexagesimal (e.g. 1:30.5): exact only as far as a float is
        return Decimal(str(loader.construct_yaml_float(node)))
    return Decimal(text)


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EngineConfig(_Model):
    """`moonship.engine`."""

    #: this engine's name, unique among running engines (its keys in the shared cache and journal)
    name: str = "engine"
    #: seconds between two summary lines (position, P/L, fees, orders, fills) of each running strategy;
    #: 0 logs none (the table at stop is always logged)
    summary_interval: float = Field(default=60, ge=0, le=86400)


class _ExtraModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    @property
    def extra(self) -> dict[str, Any]:
        """The properties not declared by the model, as given in the config."""
        return dict(self.model_extra or {})


class MarketConfig(_ExtraModel):
    """`moonship.markets.NAME`; client-specific keys (api_key, real_client, fee_rate, ...) are in `extra`."""

    #: market client: `binance`, `luno`, `valr`, `paper`, `sim` or a plugin's name (or a dotted class path)
    client: str
    #: the exchange's symbol, e.g. `BTCUSDT`
    symbol: str = Field(min_length=1)
    #: the account orders are placed on by default (a venue's sub-account; the paper account's name)
    account: str | None = None
    #: orders are margin orders by default (where the venue has margin)
    enable_margin: bool = False
    #: recent public trades kept in memory
    max_recent_trade_list_size: int = Field(default=1000, ge=0)
    #: candle length in seconds built from trades: 0, 60, 300, 900, 1800, 3600 or 86400 (0: none)
    candle_period: int = 300

    @field_validator("candle_period")
    @classmethod
    def _known_period(cls, value: int) -> int:
        if value not in CANDLE_PERIODS:
            raise ValueError(f"must be one of {', '.join(map(str, CANDLE_PERIODS))} (seconds; 0 disables)")
        return value


class RiskConfig(_Model):
    """`moonship.risk` (engine-wide) and `moonship.strategies.NAME.risk`: pre-trade limits and circuit
    breakers, all optional. Where both set a limit, the stricter (smaller) one applies to the strategy."""

    #: largest order, in base
    max_order_quantity: Decimal | None = Field(default=None, gt=0)
    #: largest order value, in quote (limit price, or the book's touch for a market order, times quantity)
    max_order_notional: Decimal | None = Field(default=None, gt=0)
    #: largest absolute base position per market once the order and the strategy's open orders on its side
    #: fill completely
    max_position: Decimal | None = Field(default=None, ge=0)
    #: most open orders per strategy per market
    max_open_orders: int | None = Field(default=None, ge=0)
    #: most orders sent per second: per strategy; `moonship.risk`'s also bounds the engine's total
    max_orders_per_second: int | None = Field(default=None, gt=0)
    #: a limit price further than this from the mid (basis points) is refused (fat finger)
    price_band_bps: Decimal | None = Field(default=None, gt=0)
    #: realised loss (quote, fees included) since 00:00 UTC past which the strategy is HALTED; in
    #: `moonship.risk` also the engine's total, past which the engine is HALTED
    max_daily_loss: Decimal | None = Field(default=None, gt=0)
    #: this many rejected orders within `reject_window` seconds HALT the strategy
    max_rejects: int | None = Field(default=None, gt=0)
    #: seconds over which `max_rejects` counts rejected orders
    reject_window: float = Field(default=60.0, gt=0)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class StrategyConfig(_ExtraModel):
    """`moonship.strategies.NAME`; the algo's own properties are in `extra`."""

    #: algorithm plugin name (or a dotted class path: in the config file only)
    algo: str
    #: start the strategy when the engine starts
    auto_start: bool = False
    #: the markets (names under `moonship.markets`) the strategy trades; one name or a list
    markets: Annotated[list[str], BeforeValidator(_as_list), Field(min_length=1)]
    #: the strategy's own risk limits (declared, so never among the algo's settings in `extra`)
    risk: RiskConfig | None = None
    #: locations (within this strategy) of the values read from `$NAME` environment variables
    _secrets: frozenset[Location] = PrivateAttr(default_factory=frozenset)

    @property
    def secrets(self) -> frozenset[Location]:
        """Where the values that came from `$NAME` environment variables are (kept secret when shown)."""
        return self._secrets

    @model_serializer(mode="wrap")
    def _without_absent_risk(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No `risk: null` in a dump: a strategy without limits of its own dumps as it did before them."""
        data: dict[str, Any] = handler(self)
        if data.get("risk", ...) is None:
            del data["risk"]
        return data

    def mark_secret(self, locations: Iterable[Location]) -> None:
        self._secrets = frozenset(locations)

    def public_dump(self, secret_keys: Iterable[str] = ()) -> dict[str, Any]:
        """The config as JSON-able data for StrategyInfo, with each value that came from `$NAME` (and each
        property in `secret_keys`) shown as MASK."""
        data: dict[str, Any] = self.model_dump(mode="json")
        if self.risk is not None:
            data["risk"] = self.risk.model_dump(mode="json", exclude_unset=True)
        for location in [*self._secrets, *((key,) for key in secret_keys)]:
            _mask(data, location)
        return data


def _mask(data: Any, location: Location) -> None:
    *parents, last = location
    for part in parents:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return
    in_dict = isinstance(data, dict) and last in data
    in_list = isinstance(data, list) and isinstance(last, int) and 0 <= last < len(data)
    if in_dict or in_list:
        data[last] = MASK


class RedisConfig(_Model):
    """`moonship.redis`: the shared cache and message bus (absent `url`: no Redis)."""

    #: `redis://[:password@]host[:port]/db`, `rediss://` (TLS) or `unix://`; set: every process shares state,
    #: commands (and by default the journal) through Redis
    url: str | None = None
    #: verify the server's certificate (rediss://)
    ssl_verify_cert: bool = True
    #: RESP protocol version (the original's `redis.protocol`); None leaves the client default
    protocol: Literal[2, 3] | None = None

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class JournalConfig(_Model):
    """`moonship.journal`: where every order and fill is recorded."""

    #: "sqlite" (a file) or "redis" (moonship.redis.url); default: redis when redis.url is set, else sqlite
    backend: Literal["sqlite", "redis"] | None = None
    #: the SQLite file; default `moonship-data/<engine name>.sqlite` in the working directory
    path: str | None = None
    #: what start-up does with an open exchange order that carries our client order id prefix but is not in
    #: the journal: cancel it, adopt it (no owner: its fills are booked to no strategy), or leave it alone
    unknown_orders: Literal["cancel", "adopt", "ignore"] = "cancel"


class MetricsConfig(_Model):
    """`moonship.metrics`: the engine's own Prometheus listener (GET /metrics); no `port`, none."""

    #: TCP port of the engine's own GET /metrics listener (none: no listener)
    port: int | None = Field(default=None, ge=0, le=65535)
    #: address the metrics listener binds (no login: keep it on loopback or a private network)
    host: str = "127.0.0.1"


class RecordConfig(_Model):
    """`moonship.record`: recording every market's raw input while the engine trades (see `moonship
    record`)."""

    #: the recording directory (added to if it holds a recording of the same markets); unset: no recording
    dir: str | None = None


class MoonshipConfig(BaseModel):
    """The `moonship` root. Any other root key is a plugin section (a raw mapping, see `sections`)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, Any]] = Field(init=False)

    engine: EngineConfig = Field(default_factory=EngineConfig)
    markets: dict[str, MarketConfig] = Field(default_factory=dict)
    strategies: dict[str, StrategyConfig] = Field(default_factory=dict)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    #: `logging.config.dictConfig` entries merged over the defaults (INFO to stderr): formatters, filters,
    #: handlers and loggers merge per name, `root` key by key
    logging: dict[str, Any] = Field(default_factory=dict)

    @property
    def journal_backend(self) -> Literal["sqlite", "redis"]:
        """The journal's backend after defaults."""
        if self.journal.backend is not None:
            return self.journal.backend
        return "redis" if self.redis.url else "sqlite"

    @property
    def journal_path(self) -> Path:
        """The SQLite journal's file after defaults."""
        return Path(self.journal.path or f"moonship-data/{self.engine.name}.sqlite")

    @property
    def sections(self) -> dict[str, dict[str, Any]]:
        """The plugin sections (api, monitor, binance, ...) by root key."""
        return dict(self.model_extra or {})

    def section(self, name: str) -> dict[str, Any]:
        """The plugin section `name`, or an empty dict if absent."""
        return self.sections.get(name, {})


def load_config(path: str | Path) -> MoonshipConfig:
    """Read, substitute and validate the YAML config file at `path`."""
    config, problems = load_config_checked(path)
    if problems or config is None:
        raise ConfigError("\n".join(problems))
    return config


def load_config_checked(path: str | Path) -> tuple[MoonshipConfig | None, list[str]]:
    """Read the YAML config file at `path`: the config as far as it is valid and every problem (see
    `parse_config_checked`); a file that cannot be read or parsed raises ConfigError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not _has_root(data):
        raise ConfigError(f"config file {path} has no '{ROOT}:' mapping at its root")
    return parse_config_checked(data)


def load_yaml(text: str) -> Any:
    """Parse YAML safely, reading floats as exact `Decimal`s."""
    return yaml.load(text, Loader=_DecimalLoader)


def _has_root(data: Any) -> bool:
    return isinstance(data, Mapping) and isinstance(data.get(ROOT), Mapping)


def parse_config(data: Mapping[str, Any], *, substitute_env: bool = True) -> MoonshipConfig:
    """Validate an already-loaded document `{"moonship": {...}}`.

    `substitute_env=False` leaves `$NAME` values alone: use it for input from outside (e.g. the API), which
    must not be able to read the process environment.
    """
    config, problems = parse_config_checked(data, substitute_env=substitute_env)
    if problems or config is None:
        raise ConfigError("\n".join(problems))
    return config


def parse_config_checked(
    data: Mapping[str, Any], *, substitute_env: bool = True
) -> tuple[MoonshipConfig | None, list[str]]:
    """Like `parse_config`, but returns every problem with the config as far as it is valid (the parts with a
    problem left out, so that the rest can be checked further), or None when nothing of it is usable."""
    if not _has_root(data):
        return None, [f"the config has no '{ROOT}:' mapping at its root"]
    root = dict(data[ROOT])
    secrets: set[Location] = set()
    if substitute_env:
        try:
            root = substitute_env_vars(root, secrets=secrets)
        except ConfigError as exc:
            return None, str(exc).splitlines()
    problems: list[str] = []
    config: MoonshipConfig | None = None
    for _ in range(5):  # each round leaves out what failed; what is left is validated again
        try:
            config = MoonshipConfig.model_validate(root)
            break
        except ValidationError as exc:
            lines = format_errors(exc.errors(), ROOT, MoonshipConfig).splitlines()
            problems += [line for line in lines if line not in problems]
            root = _without_errors(root, exc)
    if config is None:
        return None, problems
    problems += [
        f"{ROOT}.strategies.{printable(name, 80)}: bad strategy name: it must be {STRATEGY_NAME_RULE}"
        for name in config.strategies
        if not valid_strategy_name(name)
    ]
    problems += [
        f"{ROOT}.strategies.{name}.markets: unknown market {market!r}"
        for name, strategy in config.strategies.items()
        for market in strategy.markets
        if market not in config.markets
    ]
    if config.journal.backend == "redis" and not config.redis.url:
        problems.append(f"{ROOT}.journal.backend: redis needs moonship.redis.url")
    for name, strategy in config.strategies.items():
        strategy.mark_secret(loc[2:] for loc in secrets if loc[:2] == ("strategies", name) and len(loc) > 2)
    return config, problems


def _without_errors(root: dict[str, Any], exc: ValidationError) -> dict[str, Any]:
    """`root` without the parts the errors are in: the one market or strategy, or the whole other key."""
    pruned = dict(root)
    for error in exc.errors():
        loc = error["loc"]
        if not loc:
            return {}
        key = str(loc[0])
        if key in ("markets", "strategies") and len(loc) > 1 and isinstance(pruned.get(key), dict):
            pruned[key] = {k: v for k, v in pruned[key].items() if k != loc[1]}
        else:
            pruned.pop(key, None)
    return pruned


def substitute_env_vars(
    tree: dict[str, Any], prefix: str = ROOT, *, secrets: set[Location] | None = None
) -> dict[str, Any]:
    """A copy of `tree` where each string value `$NAME` is environment variable NAME (`$$X` is `$X`); the
    location of each substituted value is added to `secrets` if given."""
    missing: list[str] = []

    def walk(value: Any, path: str, location: Location) -> Any:
        if isinstance(value, dict):
            return {key: walk(item, f"{path}.{key}", (*location, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, f"{path}[{i}]", (*location, i)) for i, item in enumerate(value)]
        match = _ENV_REF.match(value) if isinstance(value, str) else None
        if match is None:
            return value
        name = match.group(1)
        if name.startswith("$"):
            return name
        if name not in os.environ:
            missing.append(f"{path}: environment variable {name} is not set")
        if secrets is not None:
            secrets.add(location)
        return os.environ.get(name)

    result: dict[str, Any] = walk(tree, prefix, ())
    if missing:
        raise ConfigError("\n".join(missing))
    return result


def format_errors(
    errors: Iterable[ErrorDetails],
    prefix: str,
    model: type[BaseModel] | None = None,
    known: Iterable[str] = (),
) -> str:
    """pydantic errors as `prefix.dotted.path: problem` lines. Given the `model` that was validated (and
    `known`: other keys valid beside the model's own at its top level), an unknown property says which known
    one it is close to: `unknown property; did you mean fee_rate?`."""
    lines = []
    for error in errors:
        path = prefix
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        problem = _problem(error)
        loc = error["loc"]
        if error["type"] == "extra_forbidden" and model is not None and loc and isinstance(loc[-1], str):
            candidates = _fields_at(model, loc[:-1]) | (set(known) if len(loc) == 1 else set())
            problem += did_you_mean(loc[-1], candidates)
        lines.append(f"{path}: {problem}")
    return "\n".join(lines)


def did_you_mean(key: str, candidates: Iterable[str]) -> str:
    """`; did you mean X?` for the candidate closest to a misspelled `key`, or "" when none is close."""
    import difflib  # only for a config with a mistake

    close = difflib.get_close_matches(key, sorted(set(candidates) - {key}), n=1, cutoff=0.65)
    return f"; did you mean {close[0]}?" if close else ""


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> set[str]:
    """The property names of the model found at `loc` inside `model` (through fields, dicts, lists and
    optionals), or an empty set."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return set()
    found = _as_model(current)
    if found is None:
        return set()
    return {field.alias or name for name, field in found.model_fields.items()}


def _step(annotation: Any, part: int | str) -> Any:
    found = _as_model(annotation)
    if found is not None:
        field = found.model_fields.get(str(part))
        return field.annotation if field is not None else None
    for arg in _unwrap(annotation):
        origin = typing.get_origin(arg)
        if origin in (dict, Mapping) or (origin is not None and isinstance(origin, type)
                                        and issubclass(origin, Mapping)):
            args = typing.get_args(arg)
            return args[1] if len(args) == 2 else None
        if origin in (list, tuple, set, frozenset) and isinstance(part, int):
            args = typing.get_args(arg)
            return args[0] if args else None
    return None


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an Optional/Union and the type inside Annotated."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [alt for arg in typing.get_args(annotation) for alt in _unwrap(arg)]
    return [annotation]


def _as_model(annotation: Any) -> type[BaseModel] | None:
    for arg in _unwrap(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _problem(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown property"
    message = error["msg"].removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: Any, prefix: str, known: Iterable[str] = ()) -> M:
    """Validate `data` with `model`; errors become one ConfigError naming each property under `prefix` (an
    unknown one with the model's property, or one of `known`, that it is close to)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc.errors(), prefix, model, known)) from None


def section_settings(sections: Mapping[str, Any], name: str, model: type[BaseModel] | None) -> Any:
    """A plugin's settings: its validated section, or its model's defaults when the section is absent
    (so a required setting is reported missing), or {} for a plugin without a settings model."""
    if name in sections:
        return sections[name]
    return {} if model is None else validate_model(model, {}, f"{ROOT}.{name}")


def validate_sections(
    config: MoonshipConfig,
    known: Mapping[str, type[BaseModel] | None],
    problems: list[str] | None = None,
) -> dict[str, BaseModel | dict[str, Any]]:
    """Validate each plugin section present in `config` with its plugin's settings model (None: kept raw).
    Problems raise one ConfigError, or are added to `problems` if given (the valid sections are returned)."""
    result: dict[str, BaseModel | dict[str, Any]] = {}
    collect = problems is not None
    problems = [] if problems is None else problems
    for name, section in config.sections.items():
        if name not in known:
            roots = set(known) | set(MoonshipConfig.model_fields)
            hint = did_you_mean(name, roots) or " (no installed plugin uses it)"
            problems.append(f"{ROOT}.{name}: unknown property{hint}")
            continue
        model = known[name]
        if model is None:
            result[name] = section
            continue
        try:
            result[name] = model.model_validate(section)
        except ValidationError as exc:
            problems.append(format_errors(exc.errors(), f"{ROOT}.{name}", model))
    if problems and not collect:
        raise ConfigError("\n".join(problems))
    return result


def default_logging() -> dict[str, Any]:
    """The default `logging.config.dictConfig` dict."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"log": {"format": LOG_FORMAT}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "log", "stream": "ext://sys.stdout"}
        },
        "root": {"handlers": ["stdout"], "level": "WARNING"},
        # httpx logs every request at INFO: kept quiet unless `moonship.logging.loggers.httpx` says otherwise
        "loggers": {"moonship": {"level": "INFO"}, "httpx": {"level": "WARNING"}},
    }


def logging_config(config: MoonshipConfig) -> dict[str, Any]:
    """The defaults with `moonship.logging` merged over them.

    Formatters, filters, handlers and loggers merge per name: a given entry's keys override the default
    entry's, unless it names another class, which replaces the entry. `root` merges key by key.
    """
    result = default_logging()
    for key, value in config.logging.items():
        default = result.get(key)
        if key in ("formatters", "filters", "handlers", "loggers") and isinstance(value, dict):
            merged = dict(default or {})
            for name, entry in value.items():
                merged[name] = _merge_entry(merged.get(name), entry)
            result[key] = merged
        else:
            result[key] = _merge_entry(default, value)
    return result


def _merge_entry(default: Any, value: Any) -> Any:
    if not (isinstance(default, dict) and isinstance(value, dict)):
        return value
    for factory in ("class", "()"):
        if factory in value and value[factory] != default.get(factory):
            return value
    return {**default, **value}


def configure_logging(config: MoonshipConfig) -> None:
    """Apply `logging_config(config)`, creating the directory of every handler's `filename` first."""
    settings = logging_config(config)
    try:
        for handler in settings.get("handlers", {}).values():
            if isinstance(handler, dict) and handler.get("filename"):
                Path(str(handler["filename"])).parent.mkdir(parents=True, exist_ok=True)
        logging.config.dictConfig(settings)
    except (OSError, ValueError, TypeError, AttributeError, ImportError) as exc:
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(f"{ROOT}.logging: {exc}{cause}") from None
