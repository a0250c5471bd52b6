"""The documentation site builds with `mkdocs build --strict`, and its generated pages hold the real thing:
every property of the settings models with a description, every path of the API's /openapi.json, the
README's algo guide."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from moonship_api.openapi import OPENAPI
from moonship_api.settings import ApiSettings
from moonship_valr.client import ValrSettings
from pydantic import BaseModel

from moonship_core.algos.spread_quoter import SpreadQuoterSettings
from moonship_core.config import (
    EngineConfig,
    JournalConfig,
    MarketConfig,
    RedisConfig,
    RiskConfig,
    StrategyConfig,
)

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*</tr>", re.S)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    return out


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text()


def text(cell: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()


@pytest.mark.parametrize(
    "model",
    [EngineConfig, MarketConfig, StrategyConfig, RiskConfig, RedisConfig, JournalConfig, ValrSettings,
     ApiSettings, SpreadQuoterSettings],
    ids=lambda m: m.__name__,
)
def test_the_configuration_reference_lists_every_property(site: Path, model: type[BaseModel]) -> None:
    rows = {text(row[0]): row for row in ROW.findall(page(site, "configuration"))}
    for name, field in model.model_fields.items():
        assert (field.alias or name) in rows, name


def test_every_property_is_described(site: Path) -> None:
    rows = ROW.findall(page(site, "configuration"))
    assert len(rows) > 100
    assert [text(row[0]) for row in rows if not text(row[3])] == []
    described = {text(row[0]): text(row[3]) for row in rows}
    assert described["summary_interval"].startswith("seconds between two summary lines")
    assert described["sub_account_id"].startswith("VALR sub-account id")


def test_the_rest_api_page_is_the_served_openapi(site: Path) -> None:
    api = page(site, "rest-api")
    assert f"Version {OPENAPI['info']['version']} of the API" in api
    for path, operations in OPENAPI["paths"].items():
        for method in operations.keys() & {"get", "post", "patch", "delete"}:
            assert f"{method.upper()} {html.escape(path)}" in api, (method, path)
    for schema in OPENAPI["components"]["schemas"]:
        assert f'id="{schema.lower()}"' in api, schema


def test_the_algo_guide_is_the_readmes(site: Path) -> None:
    guide = html.unescape(re.sub(r"<[^>]+>", "", page(site, "algo-plugins")))
    assert '"dipper.algo:Dipper"' in guide
    assert "moonship new-algo dipper" in guide


def test_every_page_is_in_the_nav(site: Path) -> None:
    home = (site / "index.html").read_text()
    pages = ["getting-started", "configuration", "algo-plugins", "exchange-plugins", "deployment", "rest-api"]
    for name in [*pages, "architecture"]:
        assert f'href="{name}/"' in home, name
