"""/docs as a person meets it: served by gunicorn, opened in headless Chromium, every operation of
the OpenAPI document listed, "Try it out" on `GET /api/v1/jobs` answered 200 and on `POST /api/v1/jobs`
with the example it offers answered 202, with no error on
the page's console (nothing fetched from elsewhere: the page works offline)."""

from __future__ import annotations

import pytest

from tests.support.browser import chromium, console_errors, screenshot

TIMEOUT = 30


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_the_docs_page_lists_every_operation_and_tries_one(stack):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    with stack.client() as api:
        document = api.get("/api/v1/openapi.json").json()
        api.post("/api/v1/jobs", json={"model": {"layers": [{"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
                                       "data": {"builtin": "seed"}, "name": "listed-in-the-docs"}).raise_for_status()
    operation_ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}

    with chromium() as browser:
        browser.get(f"{stack.url}/docs")
        wait = WebDriverWait(browser, TIMEOUT)
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
        assert not browser.find_elements(By.CSS_SELECTOR, ".errors-wrapper"), browser.find_element(By.CSS_SELECTOR, ".errors-wrapper").text
        shown = {e.get_attribute("textContent").strip() for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-operation-id")}
        assert shown == operation_ids, (operation_ids - shown, shown - operation_ids)
        assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith("Backprop Lab API")

        block = browser.find_element(By.ID, "operations-jobs-list_jobs")
        block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
        wait.until(lambda _: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))[0].click()
        wait.until(lambda _: block.find_elements(By.CSS_SELECTOR, "button.execute"))[0].click()
        status = wait.until(lambda _: block.find_elements(By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"))[0]
        body = block.find_element(By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_description").text
        screenshot(browser, "docs-try-it-out")
        assert status.text.strip() == "200", body[:500]
        assert "listed-in-the-docs" in body
        assert console_errors(browser) == []


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_try_it_out_on_submitting_a_job_sends_the_example_it_offers_and_gets_a_202(stack):
    """Swagger UI's body for POST /jobs is the document's example (the post's network), as it offers it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as browser:
        browser.get(f"{stack.url}/docs")
        wait = WebDriverWait(browser, TIMEOUT)
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
        block = browser.find_element(By.ID, "operations-jobs-submit_job")
        block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
        wait.until(lambda _: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))[0].click()
        offered = wait.until(lambda _: block.find_elements(By.CSS_SELECTOR, "textarea.body-param__text"))[0].get_attribute("value")
        assert "the post's example" in offered
        block.find_element(By.CSS_SELECTOR, "button.execute").click()
        status = wait.until(lambda _: block.find_elements(By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"))[0]
        body = block.find_element(By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_description").text
        screenshot(browser, "docs-submit-a-job")
        assert status.text.strip() == "202", body[:500]
        assert console_errors(browser) == []
