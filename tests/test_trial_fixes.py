"""What a trial user hit: a repeated count_tokens calibration, Review's Next skipping a row after a
save, counts and the budget bar one action behind, and a pilot one row short of its floor.
Pages are driven through their widgets (AppTest), as a person would."""

import re
from collections import Counter

from streamlit.testing.v1 import AppTest

from tests.helpers import import_csv, open_page

DEMO = "support-tickets-demo"



def click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def matching(at: AppTest) -> int:
    return int(next(c.value for c in at.caption if c.value.endswith("rows match.")).split()[0])


# ---- count_tokens calibration, clicked twice ----------------------------------------------


def test_saving_no_token_counts_is_not_an_error(store):
    store.save_token_counts("claude-haiku-4-5", [])  # executemany refuses an empty list
    assert store.token_counts(["nothing"]) == {}


def test_count_tokens_sample_twice_counts_once(tickets, fake):
    from core.prompt.forecast import count_tokens_sample, forecast
    from core.kernel.prices import load_prices

    assert count_tokens_sample(tickets, "tickets", "test-key", base_url=fake.url) == 6
    assert count_tokens_sample(tickets, "tickets", "test-key", base_url=fake.url) == 0  # all counted already
    assert forecast(tickets, "tickets", load_prices()).input_source == "count_tokens"


def test_calibrate_button_clicked_twice(app_store, fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    import_csv(app_store)  # six unlabeled tickets: the forecast is for them
    at = open_page("pages/2_Prompt_and_budget.py", "tickets")
    assert not any("calibrated by exact count" in m.value for m in at.markdown)
    at.button(key="count_tokens").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("calibrated by exact count" in m.value for m in at.markdown)  # the forecast above, in this run
    assert any(re.fullmatch(r"Counted \d+ requests\.", s.value) for s in at.success), [s.value for s in at.success]
    at.button(key="count_tokens").click().run()  # the repeat click crashed with executemany([])
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("counted already" in s.value for s in at.success), [s.value for s in at.success]


# ---- Review: save + Next walks the queue in order, counts are current ---------------------


def save_current(at: AppTest, reviewer: str = "ana") -> None:
    row_id = at.selectbox(key="review_row").value
    at.text_input(key="reviewer_name").set_value(reviewer)
    label = next(s for s in at.selectbox if (s.key or "").startswith("review_label:"))
    if label.value is None:  # a parse error has no label yet: pick one
        label.set_value(label.options[0])
    next(b for b in at.button if b.label == "Save review").click().run()
    assert not at.exception and any("Saved" in s.value for s in at.success), [e.value for e in at.error]
    assert at.selectbox(key="review_row").value == row_id  # the reviewer stays on the row just saved


def test_save_and_next_visit_every_row_of_the_unreviewed_queue_in_order(app_store):
    at = open_page("pages/4_Review.py")
    assert at.multiselect(key="review_filter").value == ["unreviewed"]
    queue = list(at.selectbox(key="review_row").options)
    before = matching(at)
    for i, expected in enumerate(queue[:8]):
        assert at.selectbox(key="review_row").value == expected, f"step {i}"
        save_current(at)
        assert matching(at) == before - i - 1  # the saved row left the queue, counted in this very run
        click(at, "Next ▶")
    assert at.selectbox(key="review_row").value == queue[8]
    assert all(app_store.get_item(DEMO, r)["reviewed"] for r in queue[:8])
    assert not app_store.get_item(DEMO, queue[8])["reviewed"]


def test_save_then_previous_goes_back_and_next_in_the_all_queue_goes_on(app_store):
    at = open_page("pages/4_Review.py")
    at.multiselect(key="review_filter").set_value(["all"]).run()
    queue = list(at.selectbox(key="review_row").options)
    at.selectbox(key="review_row").set_value(queue[2]).run()
    save_current(at)
    click(at, "◀ Previous")
    assert at.selectbox(key="review_row").value == queue[1]
    click(at, "Next ▶")
    click(at, "Next ▶")
    assert at.selectbox(key="review_row").value == queue[3]
    # a second save of the same row right after the first is not a conflict with itself
    save_current(at)
    save_current(at)


def test_counts_queues_and_kappa_are_current_after_save_and_undo(app_store):
    at = open_page("pages/4_Review.py")
    before = matching(at)
    kappa = next(t.value for t in at.text if t.value.startswith("Cohen's kappa"))
    assert "(0 reviews)" in kappa
    save_current(at)
    assert matching(at) == before - 1
    kappa = next(t.value for t in at.text if t.value.startswith("Cohen's kappa"))
    assert "(1 reviews)" in kappa, kappa
    click(at, "Undo ana's last change")
    assert any(s.value.startswith("Undid") for s in at.success), [e.value for e in at.error]
    assert matching(at) == before  # the row is back in the unreviewed queue, in this very run


def test_bulk_apply_counts_are_current(app_store):
    at = open_page("pages/4_Review.py")
    at.multiselect(key="review_filter").set_value(["unreviewed", "parse errors"]).run()
    before = matching(at)
    assert before > 2
    save_current(at)  # names the reviewer
    assert matching(at) == before - 1
    at.selectbox(key="bulk_action").set_value("flag").run()
    at.checkbox(key="bulk_confirm").check().run()
    at.button(key="bulk_apply").click().run()
    message = next((s.value for s in at.success if "Applied" in s.value), [e.value for e in at.error])
    assert f"Applied to {before - 1} of the {before - 1} rows" in message, message
    assert matching(at) == 0  # in this very run: the queue is empty, and so is its bulk panel
    assert not [c for c in at.checkbox if c.key == "bulk_confirm"]


# ---- Prompt page: the budget bar follows "Save cap" at once -------------------------------


def test_budget_bar_appears_right_after_save_cap(app_store):
    at = open_page("pages/2_Prompt_and_budget.py")
    assert not at.get("progress")  # no cap yet
    at.number_input(key="budget_cap").set_value(0.5)
    at.button(key="save_cap").click().run()
    assert not at.exception and any(s.value.startswith("Budget saved") for s in at.success)
    bars = at.get("progress")
    assert bars and "of $0.50" in bars[0].proto.text, [b.proto.text for b in bars]
    assert app_store.get_project(DEMO).budget_usd == 0.5
    at.number_input(key="budget_cap").set_value(0.0)
    at.button(key="save_cap").click().run()
    assert not at.get("progress") and app_store.get_project(DEMO).budget_usd is None


# ---- the pilot's floor holds ----------------------------------------------------------------


def strata_csv(sizes: dict[str, int]) -> str:
    lines, i = ["id,text,label"], 0
    for label, n in sizes.items():
        for _ in range(n):
            lines.append(f"{i},ticket {i} about {label},{label}")
            i += 1
    return "\n".join(lines) + "\n"


def test_pilot_holds_its_floor_when_per_label_rounding_drops_rows(store):
    from core.prompt.forecast import pilot_rows

    sizes = {f"label{k}": 12 for k in range(8)} | {"rare": 4}  # 100 rows: 2.4 x 8 and 0.8 round to 17
    import_csv(store, strata_csv(sizes), project="strata")
    assert len(store.stratified_sample("strata", 20)) == 17  # the cause: each label rounded on its own
    rows = pilot_rows(store, "strata", 0.02, floor=20)
    assert len(rows) == len(set(rows)) == 20
    per_label = Counter(store.get_item("strata", r)["gold"] for r in rows)
    assert set(per_label) == set(sizes)  # every label is in the pilot
    assert all(abs(per_label[lab] - 20 * n / 100) < 1 for lab, n in sizes.items()), per_label
    assert len(pilot_rows(store, "strata", 0.25, floor=20)) == 25  # the fraction, when above the floor
    assert len(pilot_rows(store, "strata", 0.02, floor=500)) == 100  # never more rows than there are


def test_pilot_floor_for_many_small_strata(store):
    from core.prompt.forecast import pilot_rows

    sizes = {f"l{k}": 7 for k in range(13)} | {"big": 9}  # 100 rows; 20 x 0.07 = 1.4 rounds to 1 thirteen times
    import_csv(store, strata_csv(sizes), project="small")
    for floor in range(1, 60):
        rows = pilot_rows(store, "small", 0.0, floor=floor)
        assert len(rows) >= floor and len(rows) == len(set(rows)), floor
