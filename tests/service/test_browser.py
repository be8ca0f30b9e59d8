"""The annotation page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) against the service under uvicorn.

A person labels three pairs, one with the mouse, one with the keyboard only and one "can't tell",
and the votes must arrive in the store with the canonical answers of what the page showed
(left/right is swapped per annotator, so the expected answers come from the images the page
displayed). On a phone-sized screen both images must sit side by side without horizontal
scrolling. Without Chromium the tests skip, unless ``OUTPOOL_REQUIRE_SERVICES=1`` (CI) makes
that a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from browser import WAIT_S, headless_chromium

from .web_support import (
    LiveServer,
    batch_body,
    canonical,
    create_batch,
    running_server,
    token_of,
    vote_body,
)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with headless_chromium(tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("browser-service")) as live:
        yield live


def wait(driver: Any, condition: Any, what: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.wait import WebDriverWait

    # a page that re-renders between finding an element and reading it: look again
    ignored = (StaleElementReferenceException,)
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05, ignored_exceptions=ignored).until(
        lambda d: condition(d), message=f"waiting for {what}"
    )


def shown_pair(driver: Any) -> dict[str, str] | None:
    """The pair on screen as the page shows it: the image ids in the left and right ``<img>``
    (once both are loaded), or None while loading / when the page shows no pair."""
    return driver.execute_script(
        """
        const work = document.getElementById("work");
        if (work.hidden) return null;
        const out = {};
        for (const side of ["left", "right"]) {
            const img = document.getElementById(side);
            if (!img.src || !img.complete || img.naturalWidth === 0) return null;
            const path = new URL(img.src).pathname;
            const m = path.match(/^\\/api\\/images\\/([^/]+)\\/([^/]+)\\.png$/);
            if (!m) return null;
            out.batch = m[1];
            out[side] = decodeURIComponent(m[2]);
        }
        out.progress = document.getElementById("progress").textContent;
        return out;
        """
    )


def next_pair(driver: Any, done: int) -> dict[str, str]:
    """Wait until the page shows a loaded pair with ``done`` answers counted."""
    return wait(
        driver,
        lambda d: (s := shown_pair(d)) and s["progress"].startswith(f"{done} labelled") and s,
        f"pair {done + 1} to show",
    )


def pressed(driver: Any, selector: str) -> bool:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector).get_attribute("aria-pressed") == "true"


def test_label_three_pairs_with_mouse_keyboard_and_cant_tell(
    driver: Any, server: LiveServer
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    body = batch_body("web", 3, k=1, new_annotators=1, seed=11)
    reply = create_batch(server, body)
    link = reply["links"][0]["link"]
    pairs = {frozenset((p["a"], p["b"])): p for p in body["pairs"]}

    driver.get(link)
    assert driver.title == "Compare two images"
    shown: list[dict[str, str]] = []

    # 1. the mouse: a comparison, a confidence, a typed rationale, the Submit button
    first = next_pair(driver, 0)
    shown.append(first)
    assert "smile" in driver.find_element(By.ID, "question").text
    assert driver.find_element(By.ID, "definition").text == body["definitions"]["smile"]
    submit = driver.find_element(By.ID, "submit")
    assert not submit.is_enabled()  # nothing chosen yet
    driver.find_element(By.CSS_SELECTOR, '[data-choice="left_more"]').click()
    assert pressed(driver, '[data-choice="left_more"]')
    assert not submit.is_enabled()  # a confidence is needed too
    driver.find_element(By.CSS_SELECTOR, '[data-confidence="somewhat"]').click()
    assert pressed(driver, '[data-confidence="somewhat"]')
    rationale = driver.find_element(By.ID, "rationale")
    rationale.click()
    rationale.send_keys("A grins wider — ü")
    assert submit.is_enabled()
    submit.click()

    # 2. the keyboard only: 2 (equally), S (somewhat), R + text, Escape, Enter
    second = next_pair(driver, 1)
    shown.append(second)
    assert driver.find_element(By.ID, "rationale").get_attribute("value") == ""  # cleared
    assert not pressed(driver, '[data-choice="left_more"]')  # the last choice is forgotten
    keys = ActionChains(driver)
    keys.send_keys("2").send_keys("s").send_keys("r").send_keys("same 2 s v")
    keys.send_keys(Keys.ESCAPE).send_keys(Keys.ENTER).perform()

    # 3. can't tell: 0, V, Enter
    third = next_pair(driver, 2)
    shown.append(third)
    ActionChains(driver).send_keys("0").send_keys("v").send_keys(Keys.ENTER).perform()

    wait(
        driver,
        lambda d: d.find_element(By.ID, "done").is_displayed(),
        "the done message",
    )
    assert not driver.find_element(By.ID, "work").is_displayed()
    assert driver.find_element(By.ID, "question").text == "Thank you"
    status = driver.find_element(By.ID, "status")
    assert "error" not in (status.get_attribute("class") or "")

    # the store has exactly these three votes, in the canonical a/b orientation
    records = {r["pair_id"]: r for r in server.store.vote_records("web")}
    assert len(records) == 3
    expected = [
        ("left_more", 0.5, "A grins wider — ü"),
        ("equal", 0.5, "same 2 s v"),
        ("illegible", 1.0, ""),
    ]
    seen_pairs = set()
    for page, (choice, confidence, text) in zip(shown, expected, strict=True):
        assert page["batch"] == "web"
        pair = pairs[frozenset((page["left"], page["right"]))]
        seen_pairs.add(pair["id"])
        record = records[pair["id"]]
        assert record["choice"] == choice
        assert record["answer"] == canonical(choice, page, pair["a"], pair["b"])
        assert record["swapped"] == int(page["left"] == pair["b"])
        assert record["confidence"] == confidence
        assert record["rationale"] == text
        assert record["elapsed_ms"] is not None and record["elapsed_ms"] >= 0
    assert seen_pairs == {p["id"] for p in body["pairs"]}
    progress = server.store.progress("web")
    assert (progress.done, progress.rejected, progress.state) == (2, 1, "closed")
    assert driver.find_element(By.ID, "progress").text.startswith("3 labelled")  # kept
    help_line = driver.find_element(By.CSS_SELECTOR, ".help").get_attribute("textContent")
    assert "Ctrl+Enter" in help_line and "Esc" in help_line
    # a reload after the end shows the done message again, and nothing more is stored
    driver.get(link)
    wait(driver, lambda d: d.find_element(By.ID, "done").is_displayed(), "the done message")
    assert len(server.store.vote_records("web")) == 3
    assert token_of(link) not in driver.page_source  # the token is not written into the page


def test_new_work_appears_without_a_reload_and_a_refused_answer_can_be_sent_again(
    driver: Any, server: LiveServer
) -> None:
    from selenium.webdriver.common.by import By

    for batch in server.store.batches():  # nothing open: the page shows "done"
        server.store.close_batch(batch.batch)
    _, token = server.store.create_annotator("team member")
    driver.get(f"{server.url}/a/{token}?poll_ms=200")
    wait(driver, lambda d: d.find_element(By.ID, "done").is_displayed(), "the done message")
    create_batch(server, batch_body("later", 2, k=1, seed=13))
    page = wait(driver, shown_pair, "the new batch's first pair, without a reload")
    assert page["batch"] == "later"
    assert not driver.find_element(By.ID, "done").is_displayed()

    # the next submission is refused once (422): the message shows, Submit can be pressed again
    driver.execute_script(
        """
        const real = window.fetch;
        window.fetch = (url, opts) => {
            window.fetch = real;
            const body = JSON.stringify({error: "rationale: refused for the test"});
            return Promise.resolve(new Response(body, {status: 422}));
        };
        """
    )
    driver.find_element(By.CSS_SELECTOR, '[data-choice="equal"]').click()
    driver.find_element(By.CSS_SELECTOR, '[data-confidence="very"]').click()
    submit = driver.find_element(By.ID, "submit")
    submit.click()
    wait(driver, lambda d: "refused for the test" in d.find_element(By.ID, "status").text, "error")
    assert submit.is_enabled()
    submit.click()  # the real fetch again: stored
    wait(driver, lambda d: len(server.store.vote_records("later")) == 1, "the vote to be stored")


def test_a_bad_link_shows_a_plain_refusal(driver: Any, server: LiveServer) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{server.url}/a/not-a-real-token")
    text = driver.find_element(By.TAG_NAME, "body").text
    assert "not valid" in text
    assert not driver.find_elements(By.ID, "work")


def test_a_phone_screen_shows_both_images_side_by_side(driver: Any, server: LiveServer) -> None:
    reply = create_batch(server, batch_body("phone", 2, k=1, new_annotators=1, seed=12))
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True},
    )
    try:
        driver.get(reply["links"][0]["link"])
        page = next_pair(driver, 0)
        assert page["batch"] == "phone"
        layout = driver.execute_script(
            """
            const box = (el) => { const r = el.getBoundingClientRect();
                                  return {left: r.left, right: r.right, top: r.top,
                                          bottom: r.bottom, width: r.width}; };
            return {
                viewport: window.innerWidth,
                scrollWidth: document.documentElement.scrollWidth,
                bodyScrollWidth: document.body.scrollWidth,
                left: box(document.getElementById("left")),
                right: box(document.getElementById("right")),
                buttons: Array.from(document.querySelectorAll("button"), box),
            };
            """
        )
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    vw = layout["viewport"]
    assert 380 <= vw <= 400, layout
    assert layout["scrollWidth"] <= vw and layout["bodyScrollWidth"] <= vw, layout
    left, right = layout["left"], layout["right"]
    assert left["left"] >= 0 and right["right"] <= vw, layout
    assert left["right"] <= right["left"], layout  # side by side, A on the left
    assert abs(left["top"] - right["top"]) < 1, layout  # on one row
    assert min(left["width"], right["width"]) >= 120, layout  # big enough to compare
    assert all(b["left"] >= 0 and b["right"] <= vw for b in layout["buttons"]), layout


def click(driver: Any, selector: str) -> None:
    """Click the element once it is there and stays (the admin page redraws its tables)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked(d: Any) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, selector).click()
        except StaleElementReferenceException:
            return False
        return True

    wait(driver, clicked, f"{selector} to click")


def test_the_admin_page_shows_agreement_disputes_and_revokes_and_closes(
    driver: Any, server: LiveServer
) -> None:
    from selenium.webdriver.common.by import By

    reply = create_batch(server, batch_body("adm", 3, k=2, new_annotators=2, seed=7))
    create_batch(server, batch_body("adm-open", 2, seed=8))
    people = [token_of(entry["link"]) for entry in reply["links"]]
    wanted = [{"adm-p0": 1, "adm-p1": 1, "adm-p2": -1}, {"adm-p0": 1, "adm-p1": -1, "adm-p2": 0}]
    pair_ab = {f"adm-p{i}": (f"adm-i{i}", f"adm-i{i + 1}") for i in range(3)}
    for token, answers in zip(people, wanted, strict=True):
        status, got = server.call("GET", "/api/task", token)
        task = got["task"]
        while task is not None:
            a, _ = pair_ab[task["pair_id"]]
            want = answers[task["pair_id"]]
            choice = (
                "equal"
                if want == 0
                else ("left_more" if (task["left"] == a) == (want == 1) else "left_less")
            )
            assert canonical(choice, task, *pair_ab[task["pair_id"]]) == want
            status, got = server.call("POST", "/api/votes", token, vote_body(task, choice))
            assert status == 200, got
            task = got["task"]

    driver.get(server.url + "/admin")
    driver.find_element(By.ID, "token").send_keys(server.admin_token)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    row = wait(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-batch="adm"]'),
        "the batches table",
    )[0]
    assert "closed" in row.text and "3 / 3" in row.text
    click(driver, 'tr[data-batch="adm"]')
    wait(driver, lambda d: "Krippendorff" in d.find_element(By.ID, "agreement").text, "alpha")
    annotators = driver.find_elements(By.CSS_SELECTOR, "#annotators tbody tr")
    assert len(annotators) == 2
    # the two split pairs, each with both images loaded through the admin's header
    figures = wait(
        driver,
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, "#disputed figure")) == 2
            and d.find_elements(By.CSS_SELECTOR, "#disputed figure")
        ),
        "the disputed pairs",
    )
    assert {f.get_attribute("data-pair") for f in figures} == {"adm-p1", "adm-p2"}
    loaded = driver.execute_script(
        "return Array.from(document.querySelectorAll('#disputed img'),"
        " (i) => i.complete && i.naturalWidth);"
    )
    assert loaded == [64, 64, 64, 64]

    # revoke the first annotator from the page: their token stops working
    first = annotators[0].get_attribute("data-annotator")
    annotators[0].find_element(By.CSS_SELECTOR, "button.revoke").click()
    driver.switch_to.alert.accept()
    wait(
        driver,
        lambda d: (
            "(revoked)"
            in d.find_element(By.CSS_SELECTOR, f'#annotators tr[data-annotator="{first}"]').text
        ),
        "the revoked mark",
    )
    assert next(a for a in server.store.annotators() if a.id == first).revoked

    # close the open batch from the page
    click(driver, 'tr[data-batch="adm-open"]')
    wait(driver, lambda d: "adm-open (open)" in d.find_element(By.ID, "report-title").text, "b")
    driver.find_element(By.ID, "close-batch").click()
    driver.switch_to.alert.accept()
    wait(driver, lambda d: "closed." in d.find_element(By.ID, "status").text, "closing")
    assert server.store.progress("adm-open").state == "closed"
    audit = [(e["action"], e["target"]) for e in server.store.audit()]
    assert ("revoke", first) in audit and ("close batch", "adm-open") in audit


def test_instructions_first_then_undo_and_skip_from_the_keyboard(
    driver: Any, server: LiveServer
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    body = batch_body("inst", 3, k=1, new_annotators=1, seed=12)
    body["examples"] = [
        {"attribute": "smile", "a": "inst-i0", "b": "inst-i3", "answer": -1, "note": "B beams."}
    ]
    reply = create_batch(server, body)
    driver.get(reply["links"][0]["link"])

    # a batch with examples opens on its instructions, images loaded
    wait(driver, lambda d: d.find_element(By.ID, "instructions").is_displayed(), "instructions")
    text = driver.find_element(By.ID, "instructions").text
    assert "how widely the mouth smiles" in text and "A is less “smile” than B. B beams." in text
    wait(
        driver,
        lambda d: (
            d.execute_script(
                "return Array.from(document.querySelectorAll('#examples img'),"
                " (i) => i.complete && i.naturalWidth).join(',')"
            )
            == "64,64"
        ),
        "the example images",
    )
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    first = next_pair(driver, 0)

    # answer it (2, V, Enter), then U takes the answer back: the same pair, nothing stored
    ActionChains(driver).send_keys("2").send_keys("v").send_keys(Keys.ENTER).perform()
    second = next_pair(driver, 1)
    assert {second["left"], second["right"]} != {first["left"], first["right"]}
    ActionChains(driver).send_keys("u").perform()
    again = next_pair(driver, 0)
    assert {again["left"], again["right"]} == {first["left"], first["right"]}
    assert server.store.vote_records("inst") == []
    assert "taken back" in driver.find_element(By.ID, "status").text

    # K skips it: another pair shows
    ActionChains(driver).send_keys("k").perform()
    wait(
        driver,
        lambda d: (
            (s := shown_pair(d)) and {s["left"], s["right"]} != {first["left"], first["right"]}
        ),
        "the pair after the skipped one",
    )
    assert "Skipped" in driver.find_element(By.ID, "status").text
    # I opens the instructions again, the button closes them
    ActionChains(driver).send_keys("i").perform()
    wait(driver, lambda d: d.find_element(By.ID, "instructions").is_displayed(), "instructions")
    driver.find_element(By.ID, "hide-help").click()
    assert driver.find_element(By.ID, "work").is_displayed()
