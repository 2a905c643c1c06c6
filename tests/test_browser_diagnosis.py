"""In real chromium: a prompt whose answers are prose shows its parse rate, the unread answers
grouped by shape and the suggested fix; applying the fix makes a new template version, and a try
of it reads every answer."""

import os
import re

import pytest

from core.db import Store
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import CHROMIUM, chromium, import_csv, running_app
from tests.test_browser import _settle
from tests.test_browser_flow import _metric, _no_exception
from tests.test_diagnosis import prose_unless_formatted

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason="Debian chromium is not installed (make test installs it)")]


@pytest.fixture
def teacher():
    server = FakeAnthropic(responder=prose_unless_formatted).start()
    yield server
    server.stop()


def test_prose_answers_are_explained_and_the_fix_is_one_click(tmp_path, teacher):
    env = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": teacher.url}
    with running_app(tmp_path, env) as (url, db), chromium() as browser:
        store = Store(db)
        import_csv(store, project="prose")
        store.update_project("prose", template="Which team handles this ticket? {text}")
        store.release()
        page = browser.new_context(viewport={"width": 1800, "height": 1400}).new_page()
        page.set_default_timeout(60000)
        page.goto(f"{url}/Prompt_and_budget?project=prose")
        page.get_by_text("This template does not say how to reply").first.wait_for()  # warned before any try
        page.get_by_role("button", name="Try on 6 rows").click()
        page.get_by_text(re.compile(r"^Try #1: template v1 .* parsed ")).first.wait_for(timeout=180000)
        _settle(page)
        _no_exception(page)
        assert _metric(page, "Parse rate") == "0%"
        page.get_by_text("Why answers were not read").wait_for()
        page.get_by_text("names no answer: 6").wait_for()  # the group's expander, with its count
        page.get_by_text(re.compile(r"Suggested fix: The template does not say how to reply")).wait_for()
        page.get_by_role("button", name="Apply the fix (format line)").click()
        page.get_by_text("Fix applied (format lines added to the template): the prompt is template version 2.").wait_for()
        _settle(page)
        assert "Reply in exactly this format:" in page.get_by_label("Template", exact=True).input_value()
        page.get_by_role("button", name="Try on 6 rows").click()
        page.get_by_text(re.compile(r"^Try #2: template v2 .* parsed ")).first.wait_for(timeout=180000)
        _settle(page)
        _no_exception(page)
        assert _metric(page, "Parse rate") == "100%"
        assert page.get_by_text(re.compile("created with a default value")).count() == 0
        assert page.get_by_text("This template does not say how to reply").count() == 0  # it says now
        # a new draft without a reply format: warned, and the format is one click away
        template = page.get_by_label("Template", exact=True)
        template.fill("Route this ticket to a team: {text}")
        page.keyboard.press("Tab")
        _settle(page)
        page.get_by_text("This template does not say how to reply").first.wait_for()
        page.get_by_role("button", name="Add the reply format lines").click()
        _settle(page)
        fixed = page.get_by_label("Template", exact=True).input_value()
        assert fixed.startswith("Route this ticket to a team: {text}") and "Reply in exactly this format:" in fixed
        assert page.get_by_text("This template does not say how to reply").count() == 0
        _no_exception(page)
