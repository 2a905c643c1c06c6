"""Review by keyboard alone in a real browser (issue 15): 20 rows of the demo's unreviewed queue
with 1-9, A and X, each key one decision that opens the next row. Prints the actions per
minute measured (no timed assertion: the number depends on the machine)."""

import os
import re
import time

import pytest

from core.db import Store
from tests.helpers import CHROMIUM, chromium, running_app

DEMO = "support-tickets-demo"
ROWS = 20

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason="Debian chromium is not installed (make test installs it)")]


def heading(page) -> str:
    return page.get_by_role("heading", name=re.compile(r"^Row ")).first.inner_text().removeprefix("Row ").strip()


def test_twenty_rows_reviewed_by_keyboard_alone(tmp_path):
    with running_app(tmp_path, drop_key=True) as (url, db), chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/Review?project={DEMO}")
        page.get_by_role("heading", name=re.compile(r"^Row ")).first.wait_for(timeout=120000)
        store = Store(db)
        queue = list(store.review_ids(DEMO, ["unreviewed"]))
        labels = store.get_project(DEMO).label_set
        reviewer = page.get_by_label("Reviewer", exact=True)
        reviewer.fill("ana")
        reviewer.press("Enter")
        page.wait_for_timeout(1500)
        page.get_by_role("heading", name="Review").first.click()  # focus leaves the text field
        expected, actions, started = {}, 0, time.monotonic()
        for i in range(ROWS):
            row_id = queue[i]
            assert heading(page) == row_id
            item = store.get_item(DEMO, row_id)
            if item["label"] is None or i % 4 == 3:  # a label key: the gold one, or another (a correction)
                pick = item["gold"] if item["label"] is None or i % 8 == 7 else next(
                    x for x in labels if x != item["label"])
                key = str(labels.index(pick) + 1)
                expected[row_id] = (pick, "accept" if pick == item["label"] else "correct")
            else:
                expected[row_id] = (item["label"], "reject_rationale" if i % 5 == 4 else "accept")
                key = "x" if expected[row_id][1] == "reject_rationale" else "a"
            page.keyboard.press(key)  # one key, one decision, and the next row opens
            actions += 1
            if i + 1 < ROWS:
                page.get_by_role("heading", name=f"Row {queue[i + 1]}").wait_for(timeout=60000)
        seconds = time.monotonic() - started
        print(f"\n{ROWS} rows, {actions} key presses in {seconds:.1f} s: {actions / seconds * 60:.0f} actions per "
              f"minute, {ROWS / seconds * 60:.0f} rows per minute")
        for row_id, (label, verdict) in expected.items():
            item = store.get_item(DEMO, row_id)
            assert (item["label"], item["verdict"], item["reviewer"]) == (label, verdict, "ana"), row_id
        events = [e for e in store.review_events(DEMO) if e["reviewer"] == "ana"]
        assert len(events) == ROWS and all(e["opened_at"] is not None for e in events)
        assert page.locator('[data-testid="stException"]').count() == 0
