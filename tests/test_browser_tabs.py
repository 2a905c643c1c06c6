"""Several tabs on one labeling run, in a real browser (Debian chromium): a run started in one tab is
followed live in the others (progress and spend seen changing, at least three times each), and once
it ends every tab shows the state after it, not before it (issue 25: the truth at each moment)."""

import re
import time

import pytest

from core.db import Store
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import chromium, correct_responder, many_tickets, running_app

ROWS = 240
PROGRESS = re.compile(r"Job \S+: (\w+) · (\d+)/(\d+) rows · \$([\d.]+)")


@pytest.fixture
def teacher():
    server = FakeAnthropic(responder=correct_responder, latency_s=0.25).start()  # a run of about 10 s
    yield server
    server.stop()


def progress(page) -> tuple[str, int, float] | None:
    """(status, rows done, dollars) from the page's progress line, or None before it shows."""
    bar = page.locator('[data-testid="stProgress"]').first
    if not bar.count():
        return None
    found = PROGRESS.search(bar.inner_text())
    return (found.group(1), int(found.group(2)), float(found.group(4))) if found else None


def test_three_tabs_follow_one_run_live_and_show_the_state_after_it(tmp_path, teacher):
    env = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": teacher.url}
    with running_app(tmp_path, env) as (url, db), chromium() as browser:
        many_tickets(Store(db), ROWS)
        context = browser.new_context(viewport={"width": 1600, "height": 1200})
        tabs = [context.new_page() for _ in range(3)]
        for tab in tabs:
            tab.goto(f"{url}/Label?project=tickets")
            tab.get_by_role("heading", name="Label").first.wait_for(timeout=60000)
        tabs[0].get_by_text(f"{ROWS} rows imported; no prompt has been tried").first.wait_for(timeout=30000)
        number = tabs[0].get_by_label("Concurrent requests")
        number.fill("4")
        number.press("Tab")
        tabs[0].get_by_role("button", name="Start labeling").click()
        tabs[0].get_by_text(re.compile(r"^Started job ")).first.wait_for(timeout=60000)

        seen: list[set] = [set(), set()]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            states = [progress(tab) for tab in tabs[1:]]
            for i, state in enumerate(states):
                if state is not None:
                    seen[i].add(state)
            if all(s is not None and s[0] == "completed" for s in states):
                break
            time.sleep(0.4)
        for i, states in enumerate(seen, start=2):
            running = {s for s in states if s[0] == "running"}
            assert len(running) >= 3, f"tab {i} saw the run change only {len(running)} times: {sorted(states)}"
            assert len({s[2] for s in running}) >= 2, f"tab {i} never saw the spend move: {sorted(states)}"
            assert ("completed", ROWS) in {(s[0], s[1]) for s in states}
        for tab in tabs:  # the whole page (its stage line too), not only its live part, shows the state after
            tab.get_by_text(f"All {ROWS} rows have a teacher answer").first.wait_for(timeout=30000)
            assert tab.locator('[data-testid="stException"]').count() == 0
        context.close()
