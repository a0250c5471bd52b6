"""mkdocs hook: the pages' generated parts, built from the code at each build so they never drift.

`<!-- generated: configuration -->` becomes the configuration reference (the core's pydantic models, then each
installed plugin's `settings_model`); `<!-- generated: rest-api -->` becomes the REST API reference, from the
`/openapi.json` that the API plugin's app serves (asked in-process: no server, no network);
`<!-- generated: algo-guide -->` becomes the README's guide to writing an algorithm plugin.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Callable, Iterator, MutableMapping
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from moonship_core import config as core_config
from moonship_core.contracts.algo import NoSettings
from moonship_core.plugins import Plugins
from moonship_core.sim.paper import PaperSettings
from moonship_core.sim.synthetic import SimSettings

log = logging.getLogger("moonship.docs")  # the API's access log line goes here, not into mkdocs' output
ROOT = Path(__file__).resolve().parents[1]

_MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")
_DOC_COMMENT = re.compile(r"^\s+#: ?(.*)$")
_FIELD = re.compile(r"^\s+(\w+)\s*:")
_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Decimal: "decimal",
    SecretStr: "secret string",
    type(None): "null",
    Any: "any",
}


def on_page_markdown(markdown: str, **_: Any) -> str:
    return _MARKER.sub(lambda match: _GENERATORS[match.group(1)](), markdown)


# ------------------------------------------------------------------------------------- configuration
def configuration() -> str:
    plugins = Plugins.load()
    parts = ["## The core (`moonship-core`)", ""]
    parts += _model_tables(core_config.MoonshipConfig, "moonship")
    parts += [
        "### `moonship.markets.NAME` with `client: paper`",
        "",
        "Paper trading over a real client's live market data; every other key of the market goes to the real "
        "client.",
        "",
        *_model_tables(PaperSettings, "moonship.markets.NAME", heading=False),
        "### `moonship.markets.NAME` with `client: sim` (or `real_client: sim`)",
        "",
        "The offline synthetic market.",
        "",
        *_model_tables(SimSettings, "moonship.markets.NAME", heading=False),
    ]
    for name, model, where in _plugin_models(plugins):
        parts += [f"## `{name}` ({where})", ""]
        parts += _model_tables(model, _section(name, where))
    return "\n".join(parts)


def _section(name: str, where: str) -> str:
    if where.startswith("algo"):
        return f"moonship.strategies.NAME (algo: {name})"
    if where.startswith("alert action"):
        return f"moonship.monitor.{name}"
    return f"moonship.{name}"


def _plugin_models(plugins: Plugins) -> Iterator[tuple[str, type[BaseModel], str]]:
    """(name, settings model, what provides it) of every installed plugin entry that has settings."""
    distributions = {
        (kind, entry): info.distribution
        for info in plugins.describe()
        for kind, entries in info.provides.items()
        for entry in entries
    }
    documented: set[type[BaseModel]] = set()
    for kind, label in (("market_clients", "market client"), ("services", "service"), ("algos", "algo"),
                        ("alert_actions", "alert action")):
        for name in plugins.names(kind):
            model = getattr(plugins.resolve(kind, name), "settings_model", None)
            if model is None or model is NoSettings or model in documented or not model.model_fields:
                continue
            documented.update(_nested_models(model))
            yield name, model, f"{label}, `{distributions.get((kind, name), 'moonship-core')}`"


def _nested_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        for inner in _models_in(field.annotation):
            found |= _nested_models(inner)
    return found


def _model_tables(
    model: type[BaseModel], path: str, *, heading: bool = True, seen: dict[type[BaseModel], str] | None = None
) -> list[str]:
    """A table of `model`'s properties under `path`, then one per nested model (once per model: a model met
    again refers to its first table)."""
    seen = {} if seen is None else seen
    lines = [f"### `{path}`", ""] if heading else []
    if model in seen:
        return [*lines, f"The properties of [`{seen[model]}`](#{_anchor(seen[model])}).", ""]
    seen[model] = path
    doc = model.__dict__.get("__doc__")  # its own, not BaseModel's
    if heading and doc and not re.fullmatch(r"`[^`]+`\.?", doc.strip()):
        lines += [_one_line(doc), ""]
    lines += ["| property | type | default | description |", "|---|---|---|---|"]
    comments = _doc_comments(model)
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        models = _models_in(field.annotation)
        mapping = typing.get_origin(_unwrap(field.annotation)) is dict
        child = f"{path}.{key}.NAME" if mapping else f"{path}.{key}"
        description = field.description or comments.get(name, "")
        if models:
            nested.append((models[0], child))
            description = (description + " " if description else "") + f"see `{child}`"
        lines.append(f"| `{key}` | {_type(field.annotation)} | {_default(field)} | {_cell(description)} |")
    lines.append("")
    for inner, child in nested:
        lines += _model_tables(inner, child, seen=seen)
    return lines


def _anchor(path: str) -> str:
    """The id the toc extension gives the heading `` `path` ``."""
    return re.sub(r"[^\w\s-]", "", path.lower()).strip().replace(" ", "-")


def _doc_comments(model: type[BaseModel]) -> dict[str, str]:
    """The `#:` comments above each field in the source of `model` and its bases."""
    comments: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in source.splitlines():
            comment, field = _DOC_COMMENT.match(line), _FIELD.match(line)
            if comment:
                pending.append(comment.group(1).strip())
                continue
            if field and pending:
                comments[field.group(1)] = " ".join(pending)
            pending = []
    return comments


def _unwrap(annotation: Any) -> Any:
    """`annotation` without Annotated and without None in a union."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    annotation = _unwrap(annotation)
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) is dict:
        return _models_in(typing.get_args(annotation)[1])
    return []


def _type(annotation: Any) -> str:
    optional = _unwrap(annotation) is not annotation and typing.get_origin(annotation) is not typing.Annotated
    inner = _unwrap(annotation)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is typing.Literal:
        text = " \\| ".join(f"`{a}`" for a in args)
    elif origin in (list, tuple, set, frozenset):
        text = f"list of {_type(args[0])}" if args else "list"
    elif origin is dict:
        text = f"mapping of {_type(args[0])} to {_type(args[1])}" if args else "mapping"
    elif origin in (typing.Union, types.UnionType):
        text = " or ".join(_type(a) for a in args)
    elif inspect.isclass(inner) and issubclass(inner, BaseModel):
        text = "mapping"
    elif inspect.isclass(inner) and issubclass(inner, Enum):
        text = " \\| ".join(f"`{m.value}`" for m in inner)
    else:
        text = _NAMES.get(inner, getattr(inner, "__name__", str(inner)))
    return f"{text} or null" if optional else text


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    factory: Callable[[], Any] | None = field.default_factory  # type: ignore[assignment]
    value = factory() if factory is not None else field.default
    if isinstance(value, BaseModel):
        return ""
    if value is None:
        return "none"
    if isinstance(value, SecretStr):
        return "`***`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (dict, list)):
        return f"`{json.dumps(value, default=str)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


# ------------------------------------------------------------------------------------------ REST API
def rest_api() -> str:
    spec = _openapi()
    info = spec["info"]
    parts = [f"Version {info['version']} of the API (OpenAPI {spec['openapi']}).", ""]
    if info.get("description"):
        parts += [info["description"], ""]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            parts += [f"## `{method.upper()} {path}`", "", f"**{operation.get('summary', '')}**", ""]
            if operation.get("description"):
                parts += [operation["description"], ""]
            parameters = [_resolve(spec, p) for p in [*operations.get("parameters", []),
                                                      *operation.get("parameters", [])]]
            if parameters:
                parts += ["| parameter | in | required | description |", "|---|---|---|---|"]
                parts += [
                    f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | "
                    f"{_cell(p.get('description', ''))} |"
                    for p in parameters
                ]
                parts.append("")
            body = operation.get("requestBody")
            if body:
                schema = _resolve(spec, body)["content"]["application/json"]["schema"]
                parts += [f"Request body: {_schema_name(schema)}.", ""]
            parts += ["| status | meaning |", "|---|---|"]
            for status, response in operation.get("responses", {}).items():
                response = _resolve(spec, response)
                meaning = _cell(response.get("description", ""))
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema is not None and not status.startswith(("4", "5")):
                    meaning += f" Body: {_schema_name(schema)}."
                parts.append(f"| {status} | {meaning} |")
            parts.append("")
    parts += ["## Schemas", ""]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        parts += [f"### {name}", "", "```json", json.dumps(schema, indent=2), "```", ""]
    return "\n".join(parts)


def _openapi() -> dict[str, Any]:
    """The document the API plugin's app serves at /openapi.json, asked through its ASGI interface."""
    from moonship_api.accesslog import DEFAULT_FORMAT, AccessLogFormat
    from moonship_api.app import Api
    from moonship_api.auth import Credentials

    from moonship_core import ControlPlane, MemoryBus, MemoryCache

    cache = MemoryCache()
    credentials, access_log = Credentials("docs", "-"), AccessLogFormat(DEFAULT_FORMAT)
    api = Api(ControlPlane(cache, MemoryBus()), cache, credentials, 0, access_log, log)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/openapi.json", "raw_path": b"/openapi.json", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"docs")], "client": ("127.0.0.1", 1), "server": ("docs", 80),
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(api.app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    if status != 200:
        raise RuntimeError(f"GET /openapi.json answered {status}")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    document: dict[str, Any] = json.loads(body)
    return document


def _resolve(spec: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        node: Any = spec
        for part in item["$ref"].lstrip("#/").split("/"):
            node = node[part]
        item = node
    return item


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if schema.get("type") == "array" and "items" in schema:
        return f"a list of {_schema_name(schema['items'])}"
    return f"`{json.dumps(schema)}`"


# ------------------------------------------------------------------------------------------ algo guide
def algo_guide() -> str:
    """The README's guide (kept the same as `moonship new-algo`'s output by a test), one heading level up."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("### Writing an algorithm plugin\n")
    end = readme.index("\n### ", start + 1)
    body = readme[start:end].split("\n", 1)[1]
    return re.sub(r"^#### ", "## ", body, flags=re.MULTILINE)


_GENERATORS: dict[str, Callable[[], str]] = {
    "configuration": configuration,
    "rest-api": rest_api,
    "algo-guide": algo_guide,
}
