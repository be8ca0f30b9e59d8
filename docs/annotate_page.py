"""Screenshot the annotation page for the README: ``python docs/annotate_page.py``.

Serves a batch of the built-in world's training pairs and opens an annotator's link in headless
Chromium (Debian's ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from outpool.service.batch import BatchSpec
from outpool.service.server import serving
from outpool.service.store import AnnotationStore
from outpool.service.web import create_app
from outpool.synth import SynthConfig, build

OUT = Path(__file__).resolve().parent / "images"


def main() -> None:
    dataset = build(SynthConfig(seed=3)).dataset
    pairs = dataset.pairs["train"].for_attribute("pointy").subset(range(12))
    with tempfile.TemporaryDirectory() as tmp:
        store = AnnotationStore.open(Path(tmp) / "votes.db")
        store.create_batch(BatchSpec.from_pairs("shoes", dataset, pairs), k=5)
        _, token = store.create_annotator("Ada")
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp}/chrome",
            "--window-size=820,900",
        ):
            options.add_argument(flag)
        with serving(create_app(store)) as url:
            driver = webdriver.Chrome(
                service=Service(executable_path="/usr/bin/chromedriver"), options=options
            )
            try:
                driver.get(f"{url}/a/{token}")
                WebDriverWait(driver, 10).until(
                    lambda d: (
                        d.find_element(By.ID, "left").get_attribute("complete") == "true"
                        and d.find_element(By.ID, "right").get_attribute("complete") == "true"
                        and not d.find_element(By.ID, "work").get_attribute("hidden")
                    )
                )
                driver.find_element(By.CSS_SELECTOR, '[data-choice="left_less"]').click()
                driver.find_element(By.CSS_SELECTOR, '[data-confidence="somewhat"]').click()
                why = "B's toe comes to a sharper point"
                driver.find_element(By.ID, "rationale").send_keys(why)
                driver.save_screenshot(str(OUT / "annotate_page.png"))
            finally:
                driver.quit()
        store.close()


if __name__ == "__main__":
    main()
