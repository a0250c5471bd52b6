"""Plugin registries, name resolution, section models and entry-point discovery."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import subprocess
import sys
import textwrap
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from moonship_core import plugins as plugins_module
from moonship_core.config import parse_config
from moonship_core.errors import ConfigError
from moonship_core.hookspecs import hookimpl
from moonship_core.plugins import HOOK_PREFIX, PluginFailure, PluginInfo, Plugins


class BinanceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: str


class FakeBinance:
    settings_model: ClassVar[type[BaseModel] | None] = BinanceSettings


class FakePaper:
    """A client class without a settings model."""


class FakeApi:
    settings_model: ClassVar[type[BaseModel] | None] = None


class AlgoA:
    pass


class AlgoB:
    pass


def returning(value: Any) -> Callable[[], Any]:
    def hook() -> Any:
        return value

    return hook


def plugin(**provides: Any) -> SimpleNamespace:
    """A plugin object whose hooks return `provides[kind]` (the hook `moonship_<kind>`)."""
    hooks = {HOOK_PREFIX + kind: hookimpl(returning(value)) for kind, value in provides.items()}
    return SimpleNamespace(**hooks)


@pytest.fixture
def plugins() -> Plugins:
    registry = Plugins()
    registry.register(
        plugin(market_clients={"binance": FakeBinance, "paper": FakePaper}, algos={"a": AlgoA}),
        "one",
        "dist-one",
        "1.0",
    )
    registry.register(plugin(services={"api": FakeApi}, backends={"memory": dict}), "two")
    return registry


def test_registries(plugins: Plugins) -> None:
    assert plugins.registries["market_clients"] == {"binance": FakeBinance, "paper": FakePaper}
    assert plugins.registries["algos"] == {"a": AlgoA}
    assert plugins.registries["services"] == {"api": FakeApi}
    assert plugins.registries["backends"] == {"memory": dict}
    assert "alert_actions" not in plugins.registries  # a kind the monitor plugin declares
    assert plugins.failures == []


def test_describe(plugins: Plugins) -> None:
    assert plugins.describe() == [
        PluginInfo("one", "dist-one", "1.0", {"market_clients": ["binance", "paper"], "algos": ["a"]}),
        PluginInfo("two", None, None, {"services": ["api"], "backends": ["memory"]}),
    ]


def test_later_plugin_wins_with_a_warning(plugins: Plugins, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "moonship.plugins"):
        plugins.register(plugin(algos={"a": AlgoB, "b": AlgoB}), "three")
    assert plugins.registries["algos"] == {"a": AlgoB, "b": AlgoB}
    assert "Plugin three replaces algos 'a'" in caplog.text


def test_failing_hook_drops_only_that_plugin(plugins: Plugins, caplog: pytest.LogCaptureFixture) -> None:
    def moonship_algos() -> dict[str, type]:
        raise RuntimeError("boom")

    broken = SimpleNamespace(
        moonship_algos=hookimpl(moonship_algos),
        moonship_services=hookimpl(returning({"monitor": FakeApi})),
    )
    with caplog.at_level(logging.ERROR, "moonship.plugins"):
        plugins.register(broken, "broken", "moonship-broken")
    assert [(f.name, f.distribution, f.error) for f in plugins.failures] == [
        ("broken", "moonship-broken", "RuntimeError: boom")
    ]
    assert "broken" in caplog.text and "RuntimeError: boom" in caplog.text
    assert plugins.registries["services"] == {"api": FakeApi}
    assert plugins.registries["algos"] == {"a": AlgoA}
    assert [info.name for info in plugins.describe()] == ["one", "two"]


def test_hook_must_return_a_dict(plugins: Plugins) -> None:
    plugins.register(plugin(algos=["not", "a", "dict"]), "listy")
    assert len(plugins.failures) == 1
    assert plugins.failures[0].name == "listy"
    assert "returned list, not a dict" in plugins.failures[0].error


def test_duplicate_plugin_name_is_a_failure(plugins: Plugins) -> None:
    plugins.register(plugin(algos={"z": AlgoB}), "one")
    assert plugins.failures[0].name == "one"
    assert "z" not in plugins.registries["algos"]


def test_resolve_registry_names_and_seed_aliases(plugins: Plugins) -> None:
    assert plugins.resolve("market_clients", "binance") is FakeBinance
    assert plugins.resolve("market_clients", "moonship.client.binance.BinanceClient") is FakeBinance
    assert plugins.resolve("market_clients", "moonship.client.paper.PaperTradingClient") is FakePaper
    assert plugins.resolve("algos", "a") is AlgoA
    assert plugins.resolve("services", "api") is FakeApi


def test_resolve_dotted_paths_by_import(plugins: Plugins) -> None:
    assert plugins.resolve("algos", "collections.OrderedDict") is OrderedDict
    with pytest.raises(ConfigError, match=r"cannot import algo 'no_such_pkg\.Algo': ModuleNotFoundError"):
        plugins.resolve("algos", "no_such_pkg.Algo")
    with pytest.raises(ConfigError, match=r"cannot import algo 'collections\.Nope': AttributeError"):
        plugins.resolve("algos", "collections.Nope")
    with pytest.raises(ConfigError, match=r"algo 'os\.sep' is not a class"):
        plugins.resolve("algos", "os.sep")


def test_resolve_unknown_names(plugins: Plugins) -> None:
    with pytest.raises(ConfigError) as info:
        plugins.resolve("market_clients", "kraken")
    assert str(info.value) == "unknown market client 'kraken'; available: binance, paper"
    with pytest.raises(ConfigError) as info:
        plugins.resolve("market_clients", "moonship.client.luno.LunoClient")
    assert str(info.value) == (
        "unknown market client 'moonship.client.luno.LunoClient': it needs the moonship-luno plugin "
        "(pip install moonship-luno); available: binance, paper"
    )
    with pytest.raises(ConfigError) as info:
        plugins.resolve("algos", "moonship.algo.test.LogMarketInfo")
    assert str(info.value) == (
        "unknown algo 'moonship.algo.test.LogMarketInfo': it needs the moonship-core plugin "
        "(pip install moonship-core); available: a"
    )
    needs = r"it needs the moonship-monitor plugin \(pip install moonship-monitor\); available: api"
    with pytest.raises(ConfigError, match=r"unknown service .monitor.: " + needs):
        plugins.resolve("services", "monitor")
    with pytest.raises(ConfigError, match="available: none"):
        Plugins().resolve("algos", "x")


def test_section_models(plugins: Plugins) -> None:
    assert plugins.section_models() == {"binance": BinanceSettings, "paper": None, "api": None}


def test_check_validates_sections_and_names(plugins: Plugins) -> None:
    config = parse_config(
        {
            "moonship": {
                "markets": {
                    "btc": {"client": "paper", "symbol": "X"},
                    "eth": {"client": "kraken", "symbol": "Y"},
                },
                "strategies": {
                    "s1": {"algo": "nope", "markets": "btc"},
                    "s2": {"algo": "a", "markets": "eth"},
                },
                "binance": {"api_secret": "s"},
                "api": {"port": 1},
                "foo": {},
            }
        }
    )
    with pytest.raises(ConfigError) as info:
        plugins.check(config)
    assert str(info.value).splitlines() == [
        "moonship.binance.api_key: field required",
        "moonship.binance.api_secret: unknown property",
        "moonship.foo: unknown property (no installed plugin uses it)",
        "moonship.markets.eth.client: unknown market client 'kraken'; available: binance, paper",
        "moonship.strategies.s1.algo: unknown algo 'nope'; available: a",
    ]


def test_check_returns_validated_sections(plugins: Plugins) -> None:
    config = parse_config(
        {
            "moonship": {
                "markets": {"btc": {"client": "moonship.client.binance.BinanceClient", "symbol": "X"}},
                "strategies": {"s1": {"algo": "a", "markets": "btc"}},
                "binance": {"api_key": "k"},
                "api": {"port": 1},
            }
        }
    )
    assert plugins.check(config) == {"binance": BinanceSettings(api_key="k"), "api": {"port": 1}}


def test_check_without_resolution_skips_names(plugins: Plugins) -> None:
    config = parse_config({"moonship": {"markets": {"btc": {"client": "kraken", "symbol": "X"}}}})
    assert plugins.check(config, resolve=False) == {}


@pytest.fixture
def fake_builtin(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Stand-in for moonship_core.builtin (the real one is tested with the plugins it provides)."""
    module = ModuleType("fake_builtin")
    module.moonship_market_clients = hookimpl(returning({"paper": FakePaper}))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_builtin", module)
    monkeypatch.setattr(plugins_module, "BUILTIN_MODULE", "fake_builtin")
    return module


def test_load_registers_the_builtin_first(fake_builtin: ModuleType) -> None:
    plugins = Plugins.load(entry_points=False)
    assert plugins.failures == []
    assert plugins.describe() == [
        PluginInfo(
            "builtin", "moonship-core", metadata.version("moonship-core"), {"market_clients": ["paper"]}
        )
    ]
    assert plugins.resolve("market_clients", "moonship.client.paper.PaperTradingClient") is FakePaper


def test_load_without_a_builtin_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins_module, "BUILTIN_MODULE", "moonship_core.no_such_builtin")
    plugins = Plugins.load(entry_points=False)
    assert (plugins.failures, plugins.describe()) == ([], [])


def test_a_broken_builtin_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "broken_builtin.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins_module, "BUILTIN_MODULE", "broken_builtin")
    plugins = Plugins.load(entry_points=False)
    assert plugins.failures == [
        PluginFailure(
            "builtin", "moonship-core", "ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
        )
    ]


# --- discovery of installed distributions ---------------------------------------------------------------


def _can_build_offline() -> bool:
    """pip --no-build-isolation needs a setuptools that builds wheels by itself (>= 70.1) or `wheel`."""
    major, minor = (int(part) for part in metadata.version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _make_distribution(root: Path, dist: str, package: str, entry_point: str, module_text: str) -> Path:
    project = root / dist
    (project / package).mkdir(parents=True)
    (project / package / "__init__.py").write_text("")
    (project / package / "plugin.py").write_text(textwrap.dedent(module_text))
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.1.2"

            [project.entry-points.moonship]
            {entry_point} = "{package}.plugin"

            [tool.setuptools]
            packages = ["{package}"]
            """
        )
    )
    return project


def _pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def installed_plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A good and a broken plugin distribution, installed into this interpreter for the module's tests."""
    tag = uuid.uuid4().hex[:8]
    root = tmp_path_factory.mktemp("plugins")
    names = SimpleNamespace(
        good_dist=f"moonship-testplug-good-{tag}",
        good_ep=f"goodplug_{tag}",
        bad_dist=f"moonship-testplug-bad-{tag}",
        bad_ep=f"badplug_{tag}",
    )
    good = _make_distribution(
        root,
        names.good_dist,
        f"goodplug_pkg_{tag}",
        names.good_ep,
        """\
        from moonship_core.hookspecs import hookimpl


        class MyAlgo:
            pass


        @hookimpl
        def moonship_algos():
            return {"my_algo": MyAlgo}
        """,
    )
    bad = _make_distribution(
        root, names.bad_dist, f"badplug_pkg_{tag}", names.bad_ep, "raise ImportError('needs libfoo')\n"
    )
    isolation = ["--no-build-isolation"] if _can_build_offline() else []
    try:
        _pip("install", "--no-deps", *isolation, str(good), str(bad))
        importlib.invalidate_caches()
        yield names
    finally:
        _pip("uninstall", "-y", names.good_dist, names.bad_dist)
        importlib.invalidate_caches()


@pytest.mark.slow
def test_entry_point_plugins_are_discovered(installed_plugins: SimpleNamespace) -> None:
    plugins = Plugins.load()
    assert plugins.registries["algos"]["my_algo"].__name__ == "MyAlgo"
    infos = {info.name: info for info in plugins.describe()}
    assert infos[installed_plugins.good_ep] == PluginInfo(
        installed_plugins.good_ep, installed_plugins.good_dist, "0.1.2", {"algos": ["my_algo"]}
    )
    assert plugins.resolve("algos", "my_algo") is plugins.registries["algos"]["my_algo"]


@pytest.mark.slow
def test_a_plugin_that_fails_to_import_is_reported(
    installed_plugins: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "moonship.plugins"):
        plugins = Plugins.load()
    failures = [f for f in plugins.failures if f.name == installed_plugins.bad_ep]
    assert len(failures) == 1
    assert failures[0].distribution == installed_plugins.bad_dist
    assert failures[0].error == "ImportError: needs libfoo"
    assert f"Plugin {installed_plugins.bad_ep} ({installed_plugins.bad_dist}) failed to load" in caplog.text
    assert installed_plugins.bad_ep not in {info.name for info in plugins.describe()}
    assert "my_algo" in plugins.registries["algos"]


@pytest.mark.slow
def test_entry_points_can_be_skipped(installed_plugins: SimpleNamespace, fake_builtin: ModuleType) -> None:
    plugins = Plugins.load(entry_points=False)
    assert "my_algo" not in plugins.registries["algos"]
    assert plugins.failures == []
    assert [info.name for info in plugins.describe()] == ["builtin"]
