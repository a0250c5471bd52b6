"""The simulator's messages carry exactly the fields of VALR's examples in exchanges.md section 3."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
import websockets
from exchanges.valr import Participants

from moonship_core.testing import until

from .harness import D, local_signer, venue

pytestmark = pytest.mark.anyio

# field sets transcribed from exchanges.md 3.4-3.6
PAIR = {
    "symbol",
    "baseCurrency",
    "quoteCurrency",
    "shortName",
    "active",
    "minBaseAmount",
    "maxBaseAmount",
    "minQuoteAmount",
    "maxQuoteAmount",
    "tickSize",
    "baseDecimalPlaces",
    "marginTradingAllowed",
    "currencyPairType",
}
BOOK = {"Asks", "Bids", "LastChange", "SequenceNumber"}
LEVEL = {"side", "quantity", "price", "currencyPair", "orderCount"}
SUMMARY = {
    "currencyPair",
    "askPrice",
    "bidPrice",
    "lastTradedPrice",
    "previousClosePrice",
    "baseVolume",
    "quoteVolume",
    "highPrice",
    "lowPrice",
    "created",
    "changeFromPrevious",
    "markPrice",
}
PUBLIC_TRADE = {
    "price",
    "quantity",
    "currencyPair",
    "tradedAt",
    "takerSide",
    "sequenceId",
    "id",
    "quoteVolume",
}
NEW_TRADE = {"price", "quantity", "currencyPair", "tradedAt", "takerSide", "id"}
BALANCE = {
    "currency",
    "available",
    "reserved",
    "total",
    "updatedAt",
    "lendReserved",
    "borrowReserved",
    "borrowedAmount",
    "totalInReference",
    "totalInReferenceWeighted",
    "referenceCurrency",
}
BALANCE_UPDATE = BALANCE - {"borrowReserved"} | {"borrowCollateralReserved"}
OPEN_ORDER = {
    "orderId",
    "side",
    "remainingQuantity",
    "price",
    "currencyPair",
    "createdAt",
    "originalQuantity",
    "filledPercentage",
    "updatedAt",
    "status",
    "type",
    "timeInForce",
    "customerOrderId",
}
STATUS = {
    "orderId",
    "orderStatusType",
    "currencyPair",
    "originalPrice",
    "remainingQuantity",
    "originalQuantity",
    "orderSide",
    "orderType",
    "failedReason",
    "orderUpdatedAt",
    "orderCreatedAt",
    "timeInForce",
    "customerOrderId",
}
SUMMARY_STATUS = STATUS | {"averagePrice", "total", "totalFee", "feeCurrency"}
STATUS_UPDATE = STATUS - {"timeInForce"} | {"executedPrice", "executedQuantity", "executedFee"}
ACCOUNT_TRADE = {"price", "quantity", "currencyPair", "tradedAt", "side", "sequenceId", "id", "orderId"}
NEW_ACCOUNT_TRADE = ACCOUNT_TRADE - {"sequenceId"}


def _fee_keys(row: dict[str, Any]) -> set[str]:
    return set(row) - ({"fee", "feeCurrency"} if "fee" in row else {"makerReward", "makerRewardCurrency"})


async def test_rest_and_socket_messages_match_the_reference_fields() -> None:
    async with venue() as (sim, server):
        house = Participants(sim.exchange, "BTCZAR", mid=D(1_000_000))
        house.seed_book(3)
        signer = local_signer()
        frames: list[dict[str, Any]] = []

        async def signed(http: httpx.AsyncClient, verb: str, path: str, body: Any = None) -> httpx.Response:
            content = orjson.dumps(body) if body is not None else b""
            return await http.request(
                verb, path, content=content, headers=signer.headers(verb, path, content)
            )

        async with (
            httpx.AsyncClient(base_url=server.rest_url) as http,
            websockets.connect(
                server.ws_url + "/ws/account", additional_headers=signer.headers("GET", "/ws/account")
            ) as account,
            websockets.connect(server.ws_url + "/ws/trade") as trade,
        ):

            async def read(ws: websockets.ClientConnection) -> None:
                async for frame in ws:
                    frames.append(orjson.loads(frame))

            readers = [asyncio.create_task(read(account)), asyncio.create_task(read(trade))]
            await account.send('{"type":"SUBSCRIBE","subscriptions":[{"event":"ORDER_STATUS_UPDATE"}]}')
            events = [
                {"event": e, "pairs": ["BTCZAR"]}
                for e in ("AGGREGATED_ORDERBOOK_UPDATE", "NEW_TRADE", "MARKET_SUMMARY_UPDATE")
            ]
            await trade.send(orjson.dumps({"type": "SUBSCRIBE", "subscriptions": events}).decode())
            await until(lambda: any(f["type"] == "AGGREGATED_ORDERBOOK_UPDATE" for f in frames), what="book")

            assert set((await http.get("/v1/public/pairs")).json()[0]) == PAIR
            book = (await http.get("/v1/public/BTCZAR/orderbook")).json()
            assert set(book) == BOOK and set(book["Bids"][0]) == LEVEL and isinstance(book["LastChange"], str)
            body = {
                "side": "SELL",
                "quantity": "0.01",
                "price": "1000000",
                "pair": "BTCZAR",
                "postOnly": True,
                "customerOrderId": "wire-1",
                "timeInForce": "GTC",
            }
            placed = await signed(http, "POST", "/v2/orders/limit", body)
            assert placed.status_code == 201 and set(placed.json()) == {"id"}
            order_id = placed.json()["id"]
            assert set((await signed(http, "GET", "/v1/orders/open")).json()[0]) == OPEN_ORDER
            status = (await signed(http, "GET", f"/v1/orders/BTCZAR/orderid/{order_id}")).json()
            assert set(status) == STATUS and status["orderStatusType"] == "Placed"
            sim.exchange.place(house.account, "BTCZAR", "buy", kind="market", quantity=D(1))
            await until(lambda: any(f["type"] == "NEW_ACCOUNT_TRADE" for f in frames), what="our trade")
            summary = (await signed(http, "GET", f"/v1/orders/history/summary/orderid/{order_id}")).json()
            assert set(summary) == SUMMARY_STATUS and summary["orderStatusType"] == "Filled"
            assert set((await http.get("/v1/public/BTCZAR/marketsummary")).json()) == SUMMARY
            assert set((await http.get("/v1/public/BTCZAR/trades")).json()[0]) == PUBLIC_TRADE
            assert set((await signed(http, "GET", "/v1/account/balances")).json()[0]) == BALANCE
            mine = (await signed(http, "GET", "/v1/account/BTCZAR/tradehistory")).json()[0]
            assert _fee_keys(mine) == ACCOUNT_TRADE and mine["makerRewardCurrency"] == "BTC"
            duplicate = await signed(http, "POST", "/v2/orders/limit", {**body, "customerOrderId": "wire-2"})
            again = await signed(http, "POST", "/v2/orders/limit", {**body, "customerOrderId": "wire-2"})
            assert duplicate.status_code == 201 and again.status_code == 400
            assert again.json() == {
                "code": -11502,
                "message": "Duplicate customer order id's are not allowed",
            }
            cancel = await signed(
                http, "DELETE", "/v2/orders/order", {"orderId": duplicate.json()["id"], "pair": "BTCZAR"}
            )
            assert cancel.status_code == 200 and set(cancel.json()) == {"id"}
            gone = await signed(
                http, "DELETE", "/v2/orders/order", {"orderId": duplicate.json()["id"], "pair": "BTCZAR"}
            )
            assert gone.status_code == 400 and gone.json()["message"] == "Could not find the order to cancel"
            await until(lambda: sum(f["type"] == "ORDER_STATUS_UPDATE" for f in frames) >= 4, what="updates")
            for reader in readers:
                reader.cancel()

        by_type: dict[str, list[dict[str, Any]]] = {}
        for frame in frames:
            by_type.setdefault(frame["type"], []).append(frame)
        assert by_type["AUTHENTICATED"] == [{"type": "AUTHENTICATED"}]
        envelope = by_type["AGGREGATED_ORDERBOOK_UPDATE"][0]
        assert set(envelope) == {"type", "currencyPairSymbol", "data"} and set(envelope["data"]) == BOOK
        assert set(by_type["NEW_TRADE"][0]["data"]) == NEW_TRADE
        ws_summary = by_type["MARKET_SUMMARY_UPDATE"][0]["data"]
        assert set(ws_summary) == SUMMARY - {"currencyPair"} | {"currencyPairSymbol"}
        assert set(by_type["ORDER_STATUS_UPDATE"][0]["data"]) == STATUS_UPDATE
        assert [f["data"]["orderStatusType"] for f in by_type["ORDER_STATUS_UPDATE"]][:2] == [
            "Placed",
            "Filled",
        ]
        entry = by_type["OPEN_ORDERS_UPDATE"][0]["data"][0]
        assert set(entry) == OPEN_ORDER - {"remainingQuantity"} | {"quantity"}
        trade_frame = by_type["NEW_ACCOUNT_TRADE"][0]
        assert (
            trade_frame["currencyPairSymbol"] == "BTCZAR"
            and _fee_keys(trade_frame["data"]) == NEW_ACCOUNT_TRADE
        )
        balance = by_type["BALANCE_UPDATE"][0]["data"]
        assert set(balance) == BALANCE_UPDATE and set(balance["currency"]) >= {
            "shortName",
            "longName",
            "decimalPlaces",
        }
        assert set(by_type["ORDER_PROCESSED"][0]["data"]) == {"orderId", "success", "failureReason"}
