"""Config loading, `$NAME` substitution, validation messages, plugin sections and logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from moonship_core.config import (
    LOG_FORMAT,
    MoonshipConfig,
    configure_logging,
    load_config,
    load_yaml,
    logging_config,
    parse_config,
    validate_sections,
)
from moonship_core.errors import ConfigError

MARKET = {"client": "paper", "symbol": "BTCUSDT"}


def parse(**root: Any) -> MoonshipConfig:
    return parse_config({"moonship": root})


def error_of(**root: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse(**root)
    return str(info.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    config = parse(markets={"btc": MARKET}, strategies={"s1": {"algo": "a", "markets": ["btc"]}})
    assert config.engine.name == "engine"
    market = config.markets["btc"]
    assert (market.account, market.enable_margin) == (None, False)
    assert market.max_recent_trade_list_size == 1000
    assert market.candle_period == 300
    assert market.extra == {}
    assert config.strategies["s1"].auto_start is False
    assert (config.redis.url, config.redis.ssl_verify_cert, config.redis.protocol) == (None, True, None)
    assert config.logging == {}
    assert config.sections == {}


def test_empty_root_is_valid() -> None:
    config = parse()
    assert (config.markets, config.strategies) == ({}, {})


def test_yaml_floats_load_as_exact_decimals(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "moonship:\n"
            "  markets:\n"
            "    btc: {client: paper, symbol: BTCZAR, fee_rate: 0.1, balances: {BTC: 1_000.25, ZAR: 5}}\n"
            "  strategies:\n"
            "    s1: {algo: a, markets: btc, spread: 0.30, big: 1.5e+3, top: .inf}\n",
        )
    )
    market = config.markets["btc"].extra
    assert market["fee_rate"] == Decimal("0.1") and isinstance(market["fee_rate"], Decimal)
    assert market["balances"] == {"BTC": Decimal("1000.25"), "ZAR": 5}
    assert isinstance(market["balances"]["ZAR"], int)
    extra = config.strategies["s1"].extra
    assert str(extra["spread"]) == "0.30"
    assert extra["big"] == Decimal(1500)
    assert extra["top"] == Decimal("Infinity")


@given(st.decimals(allow_nan=False, allow_infinity=False, places=8))
def test_any_decimal_literal_round_trips(value: Decimal) -> None:
    text = format(value, "f")
    if "." not in text:
        text += ".0"
    loaded = load_yaml(f"v: {text}")["v"]
    assert isinstance(loaded, Decimal)
    assert loaded == Decimal(text)
    assert loaded.as_tuple() == Decimal(text).as_tuple()  # same digits and exponent: no float rounding


def test_integers_and_strings_are_not_decimals(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "moonship:\n  api: {port: 8080, user: '0.1'}\n"))
    assert config.section("api") == {"port": 8080, "user": "0.1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "has no 'moonship:' mapping"),
        ("foo: {}\n", "has no 'moonship:' mapping"),
        ("moonship: [1, 2]\n", "has no 'moonship:' mapping"),
        ("moonship:\n", "has no 'moonship:' mapping"),
        ("moonship: {markets: [\n", "is not valid YAML"),
        ("moonship: !!python/object:os.system {}\n", "is not valid YAML"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yml"):
        load_config(tmp_path / "nope.yml")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)


def test_parse_config_needs_the_root_mapping() -> None:
    with pytest.raises(ConfigError, match="no 'moonship:' mapping"):
        parse_config({"markets": {}})


def test_env_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("REDIS_URL", "rediss://cache:6380")
    monkeypatch.setenv("SECRET", "s3cret")
    config = parse(
        api={"port": "$PORT", "users": ["$SECRET", "$$SECRET", "$$$SECRET"], "text": "a $PORT", "n": "$1X"},
        redis={"url": "$REDIS_URL"},
        markets={"btc": {**MARKET, "api_secret": "$SECRET"}},
    )
    assert config.section("api") == {
        "port": "9000",
        "users": ["s3cret", "$SECRET", "$$SECRET"],
        "text": "a $PORT",
        "n": "$1X",
    }
    assert config.redis.url == "rediss://cache:6380"
    assert config.markets["btc"].extra["api_secret"] == "s3cret"


def test_env_value_is_validated_after_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARGIN", "true")
    monkeypatch.setenv("SIZE", "12")
    market = parse(
        markets={"btc": {**MARKET, "enable_margin": "$MARGIN", "max_recent_trade_list_size": "$SIZE"}}
    )
    assert market.markets["btc"].enable_margin is True
    assert market.markets["btc"].max_recent_trade_list_size == 12


def test_unset_env_names_every_property(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("MS_NOPE", raising=False)
    message = error_of(api={"port": "$PORT"}, monitor={"email": {"to": ["a@b", "$MS_NOPE"]}})
    assert message.splitlines() == [
        "moonship.api.port: environment variable PORT is not set",
        "moonship.monitor.email.to[1]: environment variable MS_NOPE is not set",
    ]


def test_substitution_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET", "s3cret")
    config = parse_config({"moonship": {"strategies": {}, "x": {"k": "$SECRET"}}}, substitute_env=False)
    assert config.section("x") == {"k": "$SECRET"}


def test_missing_symbol_message() -> None:
    assert error_of(markets={"btc": {"client": "paper"}}) == "moonship.markets.btc.symbol: field required"


def test_every_problem_is_one_line_of_one_error() -> None:
    message = error_of(
        engine={"nam": "x"},
        markets={"btc": {"symbol": "", "candle_period": 7, "max_recent_trade_list_size": -1}},
        strategies={"s1": {"markets": []}},
        redis={"url": "http://x", "ssl_verify_cert": "maybe"},
        api=5,
    )
    assert sorted(message.splitlines()) == sorted(
        [
            "moonship.engine.nam: unknown property; did you mean name?",
            "moonship.markets.btc.client: field required",
            "moonship.markets.btc.symbol: string should have at least 1 character",
            "moonship.markets.btc.max_recent_trade_list_size: input should be greater than or equal to 0",
            "moonship.markets.btc.candle_period: must be one of 0, 60, 300, 900, 1800, 3600, 86400"
            " (seconds; 0 disables)",
            "moonship.strategies.s1.algo: field required",
            "moonship.strategies.s1.markets: value should have at least 1 item after validation, not 0",
            "moonship.redis.url: must start with redis://, rediss:// or unix://",
            "moonship.redis.ssl_verify_cert: input should be a valid boolean, unable to interpret input",
            "moonship.api: input should be a valid dictionary",
        ]
    )


def test_list_items_have_indexed_paths() -> None:
    message = error_of(markets={"btc": MARKET}, strategies={"s1": {"algo": "a", "markets": ["btc", 3]}})
    assert message == "moonship.strategies.s1.markets[1]: input should be a valid string"


@pytest.mark.parametrize("period", [0, 60, 300, 900, 1800, 3600, 86400])
def test_candle_periods(period: int) -> None:
    assert parse(markets={"btc": {**MARKET, "candle_period": period}}).markets["btc"].candle_period == period


def test_market_extras_are_kept() -> None:
    market = parse(
        markets={"btc": {**MARKET, "real_client": "binance", "api_key": "k", "account": "main"}}
    ).markets["btc"]
    assert market.extra == {"real_client": "binance", "api_key": "k"}
    assert market.account == "main"


def test_strategy_markets_and_extras() -> None:
    config = parse(
        markets={"btc": MARKET, "eth": MARKET},
        strategies={
            "one": {"algo": "a", "markets": "btc", "auto_start": True, "threshold": Decimal("0.5")},
            "two": {"algo": "a", "markets": ["btc", "eth"]},
        },
    )
    assert config.strategies["one"].markets == ["btc"]
    assert config.strategies["one"].auto_start is True
    assert config.strategies["one"].extra == {"threshold": Decimal("0.5")}
    assert config.strategies["two"].markets == ["btc", "eth"]


def test_strategy_needs_configured_markets() -> None:
    message = error_of(markets={"btc": MARKET}, strategies={"s1": {"algo": "a", "markets": ["btc", "eth"]}})
    assert message == "moonship.strategies.s1.markets: unknown market 'eth'"


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://h:1", "unix:///tmp/redis.sock"])
def test_redis_urls(url: str) -> None:
    assert parse(redis={"url": url, "ssl_verify_cert": False}).redis.url == url


def test_plugin_sections() -> None:
    config = parse(api={"port": 8080}, monitor={"poll_interval": 5}, thirdparty={})
    assert config.sections == {"api": {"port": 8080}, "monitor": {"poll_interval": 5}, "thirdparty": {}}
    assert config.section("api") == {"port": 8080}
    assert config.section("binance") == {}


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int = 8080
    user: str


def test_validate_sections() -> None:
    config = parse(api={"port": "9000", "user": "u"}, raw={"anything": 1})
    sections = validate_sections(config, {"api": ApiSettings, "raw": None, "monitor": ApiSettings})
    assert sections == {"api": ApiSettings(port=9000, user="u"), "raw": {"anything": 1}}


def test_validate_sections_reports_full_paths() -> None:
    config = parse(api={"port": "x", "usr": "u"}, foo={})
    with pytest.raises(ConfigError) as info:
        validate_sections(config, {"api": ApiSettings})
    assert str(info.value).splitlines() == [
        "moonship.api.port: input should be a valid integer, unable to parse string as an integer",
        "moonship.api.user: field required",
        "moonship.api.usr: unknown property; did you mean user?",
        "moonship.foo: unknown property (no installed plugin uses it)",
    ]


def test_default_logging() -> None:
    assert logging_config(parse()) == {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"log": {"format": "[%(asctime)s] %(levelname)s - %(name)s: %(message)s"}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "log", "stream": "ext://sys.stdout"}
        },
        "root": {"handlers": ["stdout"], "level": "WARNING"},
        "loggers": {"moonship": {"level": "INFO"}, "httpx": {"level": "WARNING"}},
    }


def test_logging_overrides_merge_per_name() -> None:
    file_handler = {
        "class": "logging.handlers.RotatingFileHandler",
        "filename": "log/m.log",
        "formatter": "log",
    }
    settings = logging_config(
        parse(
            logging={
                "handlers": {"file": file_handler},
                "loggers": {"moonship": {"propagate": True}, "moonship.market": {"level": "DEBUG"}},
                "formatters": {"short": {"format": "%(message)s"}},
                "root": {"level": "ERROR"},
            }
        )
    )
    assert settings["handlers"] == {
        "stdout": {"class": "logging.StreamHandler", "formatter": "log", "stream": "ext://sys.stdout"},
        "file": file_handler,
    }
    assert settings["loggers"] == {
        "moonship": {"level": "INFO", "propagate": True},
        "moonship.market": {"level": "DEBUG"},
        "httpx": {"level": "WARNING"},
    }
    assert settings["formatters"] == {"log": {"format": LOG_FORMAT}, "short": {"format": "%(message)s"}}
    assert settings["root"] == {"handlers": ["stdout"], "level": "ERROR"}


def test_logging_overrides_replace() -> None:
    settings = logging_config(
        parse(
            logging={
                "root": {"handlers": ["file"]},
                "handlers": {"stdout": {"class": "logging.FileHandler", "filename": "x.log"}},
                "formatters": {"log": {"format": "%(message)s"}},
                "disable_existing_loggers": True,
            }
        )
    )
    assert settings["root"] == {"handlers": ["file"], "level": "WARNING"}
    assert settings["handlers"]["stdout"] == {"class": "logging.FileHandler", "filename": "x.log"}
    assert settings["formatters"]["log"] == {"format": "%(message)s"}
    assert settings["disable_existing_loggers"] is True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    levels = [logging.getLogger(name).level for name in ("moonship", "httpx")]
    saved = (root.handlers[:], root.level, *levels)
    yield
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("moonship").setLevel(saved[2])
    logging.getLogger("httpx").setLevel(saved[3])


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_creates_log_directories(tmp_path: Path) -> None:
    log_file = tmp_path / "log" / "deep" / "moonship.log"
    configure_logging(
        parse(
            logging={
                "handlers": {
                    "file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "log"}
                },
                "root": {"handlers": ["file"]},
                "loggers": {"moonship": {"level": "DEBUG"}},
            }
        )
    )
    logging.getLogger("moonship.test").debug("hello")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert logging.getLogger("moonship").level == logging.DEBUG
    assert log_file.read_text().endswith("DEBUG - moonship.test: hello\n")


@pytest.mark.usefixtures("restore_logging")
def test_httpx_is_quiet_by_default_and_the_logging_section_can_turn_it_back_on() -> None:
    httpx_log = logging.getLogger("httpx")
    configure_logging(parse(logging={"root": {"level": "DEBUG"}}))
    assert logging.getLogger().level == logging.DEBUG
    assert httpx_log.getEffectiveLevel() == logging.WARNING
    assert not httpx_log.isEnabledFor(logging.INFO)
    configure_logging(parse(logging={"loggers": {"httpx": {"level": "INFO"}}}))
    assert httpx_log.isEnabledFor(logging.INFO)
    configure_logging(parse(logging={"loggers": {"httpx": {"level": "NOTSET"}}, "root": {"level": "DEBUG"}}))
    assert httpx_log.isEnabledFor(logging.DEBUG)


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"^moonship\.logging: Unable to configure handler 'bad': .*nope"):
        configure_logging(parse(logging={"handlers": {"bad": {"class": "nope.Handler"}}}))


def test_journal_defaults_follow_the_engine_and_redis() -> None:
    plain = parse_config({"moonship": {"engine": {"name": "e1"}}})
    assert plain.journal_backend == "sqlite" and str(plain.journal_path) == "moonship-data/e1.sqlite"
    assert plain.journal.unknown_orders == "cancel"
    shared = parse_config({"moonship": {"redis": {"url": "redis://localhost"}}})
    assert shared.journal_backend == "redis"
    local = parse_config(
        {"moonship": {"redis": {"url": "redis://h"}, "journal": {"backend": "sqlite", "path": "/var/j.db"}}}
    )
    assert local.journal_backend == "sqlite" and str(local.journal_path) == "/var/j.db"


def test_journal_settings_are_checked() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"moonship": {"journal": {"backend": "redis", "unknown_orders": "keep", "pth": "x"}}})
    assert str(err.value).splitlines() == [
        "moonship.journal.unknown_orders: input should be 'cancel', 'adopt' or 'ignore'",
        "moonship.journal.pth: unknown property; did you mean path?",
    ]
    with pytest.raises(ConfigError, match=r"moonship.journal.backend: redis needs moonship.redis.url"):
        parse_config({"moonship": {"journal": {"backend": "redis"}}})
