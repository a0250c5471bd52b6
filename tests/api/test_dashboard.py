"""The dashboard in a real headless Chromium (selenium over the system's chromedriver): log in, see every
strategy live, stop one with a click and see it stopped; a screenshot is saved under the test's tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from support.provision import ensure

from .harness import PASSWORD, USER, Stack

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
    "--ignore-certificate-errors",  # the API's certificate comes from the tests' own CA
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(ensure("chromium"))
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=DriverService(str(ensure("chromedriver"))))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def field(browser: WebDriver, strategy: str, name: str) -> str:
    found = browser.find_elements(By.CSS_SELECTOR, f'[data-strategy="{strategy}"] [data-field="{name}"]')
    return found[0].text if found else ""


def test_log_in_see_the_strategies_and_stop_one(stack: Stack, browser: WebDriver, tmp_path: Path) -> None:
    wait = WebDriverWait(browser, 20)
    browser.get(f"{stack.url}/")
    form = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "form#login").is_displayed()
                      and b.find_element(By.CSS_SELECTOR, "form#login"))
    form.find_element(By.NAME, "user").send_keys(USER)
    form.find_element(By.NAME, "password").send_keys(PASSWORD)
    form.submit()

    # every strategy of every running engine, with its state from the event stream
    wait.until(lambda b: field(b, "main/alpha", "active") == "true")
    assert not form.is_displayed()
    assert field(browser, "main/beta", "active") == "false"
    assert field(browser, "other/gamma", "active") == "true"
    assert field(browser, "main/alpha", "position") != ""
    assert field(browser, "main/alpha", "total_profit") != ""
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, '[data-strategy="main/alpha"] canvas'))

    browser.find_element(By.CSS_SELECTOR, '[data-strategy="main/alpha"] [data-action="stop"]').click()
    wait.until(lambda b: field(b, "main/alpha", "active") == "false")
    assert stack.loop.run(stack.control.strategy("main", "alpha"))["active"] is False
    assert field(browser, "other/gamma", "active") == "true"
    browser.save_screenshot(str(tmp_path / "dashboard.png"))
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000

    browser.find_element(By.CSS_SELECTOR, '[data-strategy="main/alpha"] [data-action="start"]').click()
    wait.until(lambda b: field(b, "main/alpha", "active") == "true")

    # the trading-state controls: halt one strategy, then resume it
    browser.find_element(By.CSS_SELECTOR, '[data-strategy="main/beta"] [data-action="halt"]').click()
    wait.until(lambda b: field(b, "main/beta", "trading_state") == "HALTED")
    assert stack.loop.run(stack.control.strategy("main", "beta"))["trading_state"] == "HALTED"
    browser.find_element(By.CSS_SELECTOR, '[data-strategy="main/beta"] [data-action="resume"]').click()
    wait.until(lambda b: field(b, "main/beta", "trading_state") == "ACTIVE")
