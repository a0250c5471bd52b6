"""The OpenAPI 3 description served at /openapi.json (the seed's API 1.3.0 plus compatible additions)."""

from __future__ import annotations

from typing import Any

from moonship_core import MAX_DEPTH, STRATEGY_NAME_PATTERN


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _json(_ref("Error"), description, headers)


_ERRORS: dict[str, dict[str, Any]] = {
    "400": _error("Missing or bad field: the message names it (`Missing or bad <name> field`, or the config "
                  "property path and problem); `Bad strategy name: ...`; a body nested more than "
                  f"{MAX_DEPTH} levels deep."),
    "401": _error("`Access denied`: no live session.",
                  {"WWW-Authenticate": {"schema": {"type": "string"}}}),
    "403": _error("`Cross-site request refused`: authenticated by the cookie, with a `Sec-Fetch-Site` other "
                  "than same-origin or none, or an `Origin` whose host[:port] is not the `Host`."),
    "404": _error("`No such strategy`, or the engine is not running (`Engine '<name>' is not running`)."),
    "413": _error("`Request body too large` (over 1 MiB)."),
    "415": _error("`Content-Type must be application/json with the session cookie`: a state-changing request "
                  "authenticated by the cookie must say `Content-Type: application/json`, body or not."),
    "500": _error("`Internal server error`, or the engine's own failure message; never a traceback."),
    "503": _error("`Shared cache or message bus unavailable`."),
    "504": _error("`Operation timeout`: the engine did not answer in time."),
}


def _errors(*codes: str) -> dict[str, dict[str, Any]]:
    return {code: {"$ref": f"#/components/responses/E{code}"} for code in codes}


_NAMES = [{"$ref": "#/components/parameters/engine"}, {"$ref": "#/components/parameters/strategy"}]
_CONFIG_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _ref("ConfigBody")}},
}


def _command(summary: str, description: str, body: bool, result: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": ["Strategies"],
        "summary": summary,
        "description": description,
        "parameters": _NAMES,
        "responses": {"200": result, **_errors("400", "401", "403", "404", "415", "500", "503", "504")},
    }
    if body:
        operation["requestBody"] = _CONFIG_BODY
        operation["responses"].update(_errors("413"))
    return operation


_INFO = _json(_ref("StrategyInfo"), "The strategy as the engine reports it after the command.")
_STATE_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _ref("TradingStateBody")}},
}
_TRADING_STATE = {"type": "string", "enum": ["ACTIVE", "REDUCING", "HALTED"]}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_DECIMAL = {"type": "string", "description": "exact decimal"}

_JOURNAL_PARAMS: dict[str, dict[str, Any]] = {
    "engine": {"name": "engine", "in": "query", "schema": {"type": "string"}},
    "strategy": {
        "name": "strategy", "in": "query", "schema": {"type": "string", "pattern": STRATEGY_NAME_PATTERN}
    },
    "status": {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["open", "closed"]}},
    "since": {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
}



def _journal_params(*names: str) -> list[dict[str, Any]]:
    return [_JOURNAL_PARAMS[name] for name in names]


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Moonship API",
        "version": "1.6.0",
        "description": (
            "Monitor and control Moonship trading engines. Compatible with the seed's API 1.3.0; additions: "
            "command replies carry the StrategyInfo, POST /logout, 429 login throttling, 503 when the shared "
            "cache or bus is down. Every error is `{\"error\": message, \"status\": code}`. Every path but "
            "/login and /openapi.json needs the session token, as `Authorization: Bearer TOKEN` (preferred) "
            "or the `__Host-session_token` cookie; without a live session the reply is 401 `Access denied`, "
            "also for unknown paths. Since 1.5.0 (issue 15): logout is POST only, and a state-changing "
            "request (POST, PATCH, DELETE) authenticated by the cookie must carry `Content-Type: "
            "application/json` (else 415) and, when the browser sends `Sec-Fetch-Site` or `Origin`, come "
            "from this origin (else 403); bearer tokens are not affected. Sessions end after "
            "`moonship.api.session_lifetime` hours, and when the configured user or password hash changes. "
            "Since 1.6.0 (issue 14, the risk layer): GET /engines, and POST .../trading-state on an engine "
            "or a strategy (ACTIVE, REDUCING, HALTED); StrategyInfo has `trading_state`, "
            "`trading_state_reason`, `risk_denials` and `daily_profit`."
        ),
    },
    "tags": [{"name": "Session"}, {"name": "Strategies"}, {"name": "Engines"}, {"name": "Journal"},
             {"name": "Observability"}],
    "security": [{"bearerAuth": []}, {"cookieAuth": []}],
    "paths": {
        "/login": {
            "post": {
                "tags": ["Session"],
                "summary": "Log in",
                "description": (
                    "Checks the user and password and starts a new session (any session the request "
                    "carries is ended). Sets the cookie `__Host-session_token=TOKEN; HttpOnly; Path=/; "
                    "SameSite=Strict; Secure`. After 5 failures in a row of a user name from one client "
                    "address (20 of any names), each further failure locks that pair (address) out for 1, 2, "
                    "4 ... seconds (at most 60). An attempt during a lock that ends within 3 s waits for it; "
                    "a longer lock is 429 with a Retry-After that brings the client back within those 3 s."
                ),
                "security": [],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Login")}}},
                "responses": {
                    "200": _json(
                        _ref("Session"), "Logged in.", {"Set-Cookie": {"schema": {"type": "string"}}}
                    ),
                    "400": {"$ref": "#/components/responses/E400"},
                    "401": _error("`Invalid user or password`."),
                    "413": {"$ref": "#/components/responses/E413"},
                    "429": _error(
                        "Too many failed logins from this address: retry after the given seconds.",
                        {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
                    ),
                    **_errors("500", "503"),
                },
            }
        },
        "/logout": {
            "post": {
                "tags": ["Session"],
                "summary": "Log out",
                "description": (
                    "Ends the session everywhere and clears the cookie. POST only (GET is 405 since API "
                    "1.5.0): with the cookie it needs `Content-Type: application/json`, like every "
                    "state-changing request."
                ),
                "responses": {
                    "200": _json({"type": "object"}, "Logged out.",
                                 {"Set-Cookie": {"schema": {"type": "string"}}}),
                    **_errors("401", "403", "415", "500", "503"),
                },
            }
        },
        "/strategies": {
            "get": {
                "tags": ["Strategies"],
                "summary": "List the strategies of every running engine",
                "description": (
                    "Each query parameter keeps the strategies whose top-level field of that name equals it "
                    "(`?engine=main&active=true`). Booleans, null and numbers compare as values (`true`, "
                    "`True`; `0.5` equals `0.50`), anything else as text; a field a strategy lacks never "
                    "matches. A repeated parameter: the last value counts."
                ),
                "parameters": [{
                    "name": "filters",
                    "in": "query",
                    "style": "form",
                    "explode": True,
                    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
                }],
                "responses": {
                    "200": _json(_ref("StrategyList"), "The matching strategies."),
                    **_errors("401", "500", "503"),
                },
            }
        },
        "/strategies/{engine}/{strategy}": {
            "get": {
                "tags": ["Strategies"],
                "summary": "One strategy",
                "parameters": _NAMES,
                "responses": {
                    "200": _json(_ref("StrategyInfo"), "The strategy."),
                    **_errors("400", "401", "404", "500", "503"),
                },
            },
            "post": _command(
                "Add a strategy",
                "The config holds the properties of a `moonship.strategies.NAME` block. 400 if the strategy "
                "exists or the config is invalid (the message names the property). Started at once if "
                "`auto_start` is true.",
                True,
                _INFO,
            ),
            "patch": _command(
                "Update a strategy",
                "The config holds only the properties to change (merged over the current ones). An active "
                "strategy is stopped gracefully, updated and started again.",
                True,
                _INFO,
            ),
            "delete": _command(
                "Remove a strategy",
                "Stops it first.",
                False,
                _json({"type": "object"}, "Removed."),
            ),
        },
        "/strategies/{engine}/{strategy}/start": {
            "post": _command("Start a strategy", "No change if it is active.", False, _INFO),
        },
        "/strategies/{engine}/{strategy}/stop": {
            "post": _command("Stop a strategy", "No change if it is not active.", False, _INFO),
        },
        "/orders": {
            "get": {
                "tags": ["Journal"],
                "summary": "Journaled orders, newest first",
                "description": (
                    "From each engine's journal (every order it placed, with its latest state), read "
                    "through the running engines: `engine` (default: every running one), `strategy`, "
                    "`status` (`open` or `closed`), `since` (ISO-8601; the last update at or after it), "
                    "`limit` (1 to 10000, default 100 per engine). Decimals are exact strings."
                ),
                "parameters": _journal_params("engine", "strategy", "status", "since", "limit"),
                "responses": {
                    "200": _json(_ref("OrderList"), "The orders."),
                    **_errors("400", "401", "404", "500", "503", "504"),
                },
            }
        },
        "/fills": {
            "get": {
                "tags": ["Journal"],
                "summary": "Journaled fills, newest first",
                "description": (
                    "Every fill booked to a strategy, each once: `engine` (default: every running one), "
                    "`strategy`, `since` (ISO-8601), `limit` (1 to 10000, default 100 per engine)."
                ),
                "parameters": _journal_params("engine", "strategy", "since", "limit"),
                "responses": {
                    "200": _json(_ref("FillList"), "The fills."),
                    **_errors("400", "401", "404", "500", "503", "504"),
                },
            }
        },
        "/strategies/{engine}/{strategy}/trading-state": {
            "post": {
                **_command(
                    "Set a strategy's trading state",
                    "ACTIVE: trades normally. REDUCING: only orders that reduce its absolute position pass "
                    "(cancels always do). HALTED: its open orders are cancelled and new ones refused. "
                    "Answered once the state is in force (HALTED: the cancels are done or pending). The "
                    "StrategyInfo shows the state in force: the stricter of the strategy's and its engine's. "
                    "The state is kept in the engine's journal across restarts.",
                    False,
                    _INFO,
                ),
                "requestBody": _STATE_BODY,
            },
        },
        "/engines": {
            "get": {
                "tags": ["Engines"],
                "summary": "List the running engines with their trading state",
                "responses": {
                    "200": _json(_ref("EngineList"), "The engines whose heartbeat is alive."),
                    **_errors("401", "500", "503"),
                },
            }
        },
        "/engines/{engine}/trading-state": {
            "post": {
                "tags": ["Engines"],
                "summary": "Set an engine's trading state",
                "description": (
                    "As for a strategy, for every strategy of the engine: HALTED cancels every open order of "
                    "the engine. Answered once the state is in force."
                ),
                "parameters": [{"$ref": "#/components/parameters/engine"}],
                "requestBody": _STATE_BODY,
                "responses": {
                    "200": _json(_ref("EngineTradingState"), "The engine's trading state now."),
                    **_errors("400", "401", "403", "404", "413", "415", "500", "503", "504"),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["Observability"],
                "summary": "Every engine's metrics in the Prometheus text format",
                "description": "A session, or the bearer token `moonship.api.metrics_token`.",
                "responses": {
                    "200": {
                        "description": "The Prometheus text exposition (version 0.0.4).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors("401", "500", "503"),
                },
            }
        },
        "/health": {
            "get": {
                "tags": ["Observability"],
                "summary": "Whether the shared cache answers, and the running engines (no session)",
                "security": [],
                "responses": {
                    "200": _json({
                        "type": "object",
                        "required": ["status", "engines"],
                        "properties": {
                            "status": {"type": "string", "enum": ["ok"]},
                            "engines": {"type": "object", "additionalProperties": {"type": "object"}},
                        },
                    }, "The shared cache answers."),
                    "503": _json({
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"type": "string"}, "error": {"type": "string"}},
                    }, "The shared cache did not answer within 3 s."),
                },
            }
        },
        "/alerts": {
            "get": {
                "tags": ["Observability"],
                "summary": "The monitor's alerts that fired and have not re-armed, newest first",
                "responses": {
                    "200": _json({
                        "type": "object",
                        "required": ["alerts"],
                        "properties": {"alerts": {"type": "array", "items": {
                            "type": "object",
                            "properties": {
                                "alert": {"type": "string"}, "engine": {"type": "string"},
                                "strategy": {"type": "string"}, "time": {},
                            },
                        }}},
                    }, "The alerts."),
                    **_errors("401", "500", "503"),
                },
            }
        },
        "/events": {
            "get": {
                "tags": ["Observability"],
                "summary": "The dashboard's server-sent events",
                "description": (
                    "Every second `data: {time, engines, strategies, prices, alerts}` (JSON) while the "
                    "session lives; `event: unavailable` while the shared cache is down."
                ),
                "responses": {
                    "200": {
                        "description": "An endless event stream.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors("401"),
                },
            }
        },
        "/": {
            "get": {
                "tags": ["Observability"],
                "summary": "The dashboard (its data needs a session)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The dashboard's page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                },
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["Session"],
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "__Host-session_token"},
        },
        "parameters": {
            "engine": {"name": "engine", "in": "path", "required": True, "schema": {"type": "string"}},
            "strategy": {
                "name": "strategy", "in": "path", "required": True,
                "description": "1 to 64 of `A-Z a-z 0-9 _ . -` (400 otherwise)",
                "schema": {"type": "string", "pattern": STRATEGY_NAME_PATTERN, "maxLength": 64},
            },
        },
        "responses": {f"E{code}": response for code, response in _ERRORS.items()},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "status"],
                "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                "additionalProperties": False,
            },
            "Login": {
                "type": "object",
                "required": ["user", "password"],
                "properties": {"user": {"type": "string"}, "password": {"type": "string"}},
            },
            "Session": {
                "type": "object",
                "required": ["session_token"],
                "properties": {"session_token": {"type": "string"}},
                "additionalProperties": False,
            },
            "StrategyConfig": {
                "type": "object",
                "description": "A `moonship.strategies.NAME` block: the algo's own properties beside these.",
                "required": ["algo", "auto_start", "markets"],
                "properties": {
                    "algo": {"type": "string"},
                    "auto_start": {"type": "boolean"},
                    "markets": {"type": "array", "items": {"type": "string"}},
                    "risk": _ref("RiskConfig"),
                },
                "additionalProperties": True,
            },
            "RiskConfig": {
                "type": "object",
                "description": "The strategy's risk limits (see the README's Risk section); the stricter of "
                               "these and `moonship.risk` apply.",
                "properties": {
                    "max_order_quantity": _DECIMAL,
                    "max_order_notional": _DECIMAL,
                    "max_position": _DECIMAL,
                    "max_open_orders": {"type": "integer", "minimum": 0},
                    "max_orders_per_second": {"type": "integer", "minimum": 1},
                    "price_band_bps": _DECIMAL,
                    "max_daily_loss": _DECIMAL,
                    "max_rejects": {"type": "integer", "minimum": 1},
                    "reject_window": {"type": "number"},
                },
                "additionalProperties": False,
            },
            "TradingStateBody": {
                "type": "object",
                "required": ["state"],
                "properties": {
                    "state": _TRADING_STATE,
                    "reason": {"type": "string", "maxLength": 500},
                },
                "additionalProperties": False,
            },
            "EngineTradingState": {
                "type": "object",
                "required": ["name", "trading_state"],
                "properties": {
                    "name": {"type": "string"},
                    "trading_state": _TRADING_STATE,
                    "trading_state_reason": _NULLABLE_STRING,
                },
            },
            "Engine": {
                "type": "object",
                "required": ["name", "trading_state"],
                "properties": {
                    "name": {"type": "string"},
                    "instance": {"type": "string"},
                    "started": {"type": "string", "format": "date-time"},
                    "trading_state": _TRADING_STATE,
                    "trading_state_reason": _NULLABLE_STRING,
                },
            },
            "EngineList": {
                "type": "object",
                "required": ["engines"],
                "properties": {"engines": {"type": "array", "items": _ref("Engine")}},
                "additionalProperties": False,
            },
            "ConfigBody": {
                "type": "object",
                "required": ["config"],
                "properties": {
                    "config": {
                        "type": "object",
                        "properties": {
                            "algo": {"type": "string"},
                            "auto_start": {"type": "boolean"},
                            "markets": {
                                "oneOf": [
                                    {"type": "string"},
                                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                                ]
                            },
                        },
                        "additionalProperties": True,
                    }
                },
            },
            "StrategyInfo": {
                "type": "object",
                "description": "Runtime state; algos may add fields of their own.",
                "required": ["name", "engine", "active", "config"],
                "properties": {
                    "name": {"type": "string"},
                    "engine": {"type": "string"},
                    "active": {"type": "boolean"},
                    "start_time": {**_NULLABLE_STRING, "format": "date-time"},
                    "update_time": {**_NULLABLE_STRING, "format": "date-time"},
                    "stop_reason": _NULLABLE_STRING,
                    "config": _ref("StrategyConfig"),
                    "position": _DECIMAL,
                    "last_trade_profit": {**_DECIMAL, "nullable": True},
                    "total_profit": _DECIMAL,
                    "positions": {"type": "object", "additionalProperties": _DECIMAL},
                    "fees": {"type": "object", "additionalProperties": _DECIMAL},
                    "open_orders": {"type": "integer"},
                    "waiting_for": {**_NULLABLE_STRING, "description": "what a strategy to run waits for"},
                    "trading_state": _TRADING_STATE,
                    "trading_state_reason": {
                        **_NULLABLE_STRING,
                        "description": "why (prefixed `engine:` when the engine's state is the one in force)",
                    },
                    "risk_denials": {
                        "type": "object", "additionalProperties": {"type": "integer"},
                        "description": "orders the risk layer refused, by rule",
                    },
                    "daily_profit": {**_DECIMAL, "description": "realised P/L since 00:00 UTC (quote)"},
                },
                "additionalProperties": True,
            },
            "Order": {
                "type": "object",
                "required": ["engine", "market", "client_order_id", "side", "type", "status", "updated"],
                "properties": {
                    "engine": {"type": "string"},
                    "strategy": _NULLABLE_STRING,
                    "market": {"type": "string"},
                    "id": {"type": "string"},
                    "client_order_id": {"type": "string"},
                    "symbol": {"type": "string"},
                    "side": {"type": "string", "enum": ["BUY", "SELL"]},
                    "type": {"type": "string", "enum": ["LIMIT", "MARKET"]},
                    "status": {"type": "string"},
                    "quantity": {**_DECIMAL, "nullable": True},
                    "quote_quantity": {**_DECIMAL, "nullable": True},
                    "price": {**_DECIMAL, "nullable": True},
                    "time_in_force": {"type": "string"},
                    "post_only": {"type": "boolean"},
                    "filled_quantity": _DECIMAL,
                    "filled_quote_quantity": _DECIMAL,
                    "average_price": {**_DECIMAL, "nullable": True},
                    "fees": {"type": "object", "additionalProperties": _DECIMAL},
                    "created": {"type": "string", "format": "date-time"},
                    "updated": {"type": "string", "format": "date-time"},
                    "reason": _NULLABLE_STRING,
                    "error": {**_NULLABLE_STRING, "description": "why it was REJECTED: the error's class"},
                },
                "additionalProperties": False,
            },
            "OrderList": {
                "type": "object",
                "required": ["orders"],
                "properties": {"orders": {"type": "array", "items": _ref("Order")}},
                "additionalProperties": False,
            },
            "Fill": {
                "type": "object",
                "required": [
                    "engine", "market", "client_order_id", "side", "trade_id", "price", "quantity", "time"
                ],
                "properties": {
                    "engine": {"type": "string"},
                    "strategy": _NULLABLE_STRING,
                    "market": {"type": "string"},
                    "client_order_id": {"type": "string"},
                    "side": {"type": "string", "enum": ["BUY", "SELL"]},
                    "trade_id": {"type": "string"},
                    "price": _DECIMAL,
                    "quantity": _DECIMAL,
                    "fee": _DECIMAL,
                    "fee_asset": {"type": "string"},
                    "is_maker": {"type": "boolean"},
                    "time": {"type": "string", "format": "date-time"},
                },
                "additionalProperties": False,
            },
            "FillList": {
                "type": "object",
                "required": ["fills"],
                "properties": {"fills": {"type": "array", "items": _ref("Fill")}},
                "additionalProperties": False,
            },
            "StrategyList": {
                "type": "object",
                "required": ["strategies"],
                "properties": {"strategies": {"type": "array", "items": _ref("StrategyInfo")}},
                "additionalProperties": False,
            },
        },
    },
}
