"""VALR wire → model: server time, timestamps, pairs, trades, tickers, balances."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from moonship_core import Balance, ExchangeError, MarketInfo, MarketStatus, Side, Ticker, Trade

ZERO = Decimal(0)


def server_time_ms(data: Any) -> int:
    """VALR's clock in epoch ms from a `/v1/public/time` answer.

    VALR answers `{"epochTime": 1555228618, "time": "2019-04-14T07:56:58.372Z"}`: `epochTime` is in whole
    SECONDS, `time` is ISO-8601 with milliseconds, so `time` is the precise one. Without a usable `time`,
    `epochTime` is read as seconds when it has at most 11 digits (seconds until the year 5138) and as
    milliseconds otherwise (13 digits today), so either reading of it works.
    """
    if not isinstance(data, Mapping):
        raise ExchangeError(f"VALR /v1/public/time: unexpected answer {data!r:.100}")
    stamp = data.get("time")
    if isinstance(stamp, str) and stamp:
        try:
            moment = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)  # VALR's times are UTC
            return round(moment.timestamp() * 1000)
    try:
        epoch = int(Decimal(str(data["epochTime"])))
    except (KeyError, ArithmeticError, ValueError) as exc:
        raise ExchangeError(f"VALR /v1/public/time: no usable time in {data!r:.100}") from exc
    return epoch * 1000 if len(str(abs(epoch))) <= 11 else epoch


def parse_time(value: str | int | None) -> datetime:
    """VALR's ISO-8601 `...Z` time (or epoch ms) to an aware UTC datetime."""
    if value is None or value == "":
        return datetime.now(UTC)
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def decimal_or_none(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def parse_side(value: str) -> Side:
    return Side.BUY if value.lower() == "buy" else Side.SELL


def parse_market_info(pair: Mapping[str, Any], exchange_status: str) -> MarketInfo:
    """MarketInfo from one `/v1/public/pairs` entry."""
    tradeable = bool(pair.get("active", True)) and exchange_status == "online"
    return MarketInfo(
        symbol=str(pair["symbol"]),
        base_asset=str(pair["baseCurrency"]),
        quote_asset=str(pair["quoteCurrency"]),
        tick_size=Decimal(str(pair["tickSize"])),
        lot_size=Decimal(1).scaleb(-int(pair["baseDecimalPlaces"])),
        min_quantity=Decimal(str(pair.get("minBaseAmount") or 0)),
        min_notional=Decimal(str(pair.get("minQuoteAmount") or 0)),
        status=MarketStatus.OPEN if tradeable else MarketStatus.CLOSED,
    )


def parse_trade(data: Mapping[str, Any], symbol: str) -> Trade:
    """A public trade (REST or NEW_TRADE) with VALR's own trade id (or its sequence id on old feeds)."""
    trade_id = (
        data.get("id") or data.get("sequenceId") or f"{data['tradedAt']}:{data['price']}:{data['quantity']}"
    )
    return Trade(
        id=str(trade_id),
        symbol=symbol,
        price=Decimal(data["price"]),
        quantity=Decimal(data["quantity"]),
        taker_side=parse_side(str(data["takerSide"])),
        timestamp=parse_time(data.get("tradedAt")),
    )


def parse_ticker(data: Mapping[str, Any], symbol: str) -> Ticker:
    """A market summary (REST or MARKET_SUMMARY_UPDATE) as a Ticker."""
    return Ticker(
        symbol=symbol,
        bid=decimal_or_none(data.get("bidPrice")),
        ask=decimal_or_none(data.get("askPrice")),
        last=decimal_or_none(data.get("lastTradedPrice")),
        timestamp=parse_time(data.get("created")),
    )


def parse_balance(data: Mapping[str, Any]) -> Balance:
    """A balance from REST (`currency` is a code) or BALANCE_UPDATE (`currency` is an object)."""
    currency = data["currency"]
    asset = currency["shortName"] if isinstance(currency, Mapping) else currency
    return Balance(str(asset), Decimal(data["available"]), Decimal(data["reserved"]))
