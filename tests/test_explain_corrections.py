"""A corrected label gets a rationale that fits: the teacher explains the reviewer's label
(explain-label prompt, priced first, budget-checked), never touching what the teacher first said."""

import json
import re
import subprocess
import sys

from core.review import rules as review
from tests.helpers import REPO


def explainer(body: dict) -> str:
    """A teacher that explains the label it is given, except for 'technical', which it disputes."""
    text = body["messages"][-1]["content"]
    given = re.search(r"\) is: (\w+)\.", text)
    if given is None:  # a labeling request, not an explanation
        low = text.lower()
        label = "billing" if "charged" in low or "billed" in low else "technical" if "crash" in low or "error" in low \
            else "shipping"
        return f"Answer: {label}\nRationale: The ticket mentions {label} problems."
    label = given.group(1)
    if label == "technical":
        return "Answer: billing\nRationale: This is about money, not a fault."
    return f"Answer: {label}\nRationale: The customer writes about a {label} matter in this ticket."


def cli(db, *args):
    out = subprocess.run([sys.executable, "-m", "core", "explain-corrections", "--db", str(db), "--project", "tickets",
                          "--json", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return out.returncode, (json.loads(out.stdout) if out.stdout.strip().startswith("{") else out.stderr)


def test_the_teacher_explains_corrected_labels_after_a_quote_and_only_a_fitting_rationale_is_kept(
        tickets, serve_teacher):
    from core.label.teacher import label_project

    server = serve_teacher(explainer)
    label_project(tickets, "tickets")
    before = {r["row_id"]: r for r in tickets.items_by_order("tickets", None)}
    review.save_review(tickets, "tickets", "1", "ana", "shipping", None)    # billing -> shipping
    review.save_review(tickets, "tickets", "4", "ana", "technical", None)   # billing -> technical: disputed
    review.save_review(tickets, "tickets", "3", "ana", "billing", "My own reason.")  # has a rationale: left alone
    assert tickets.get_item("tickets", "1")["rationale"] == ""

    code, quoted = cli(tickets.path)
    assert code == 0 and quoted["sent"] == 0 and quoted["quote"]["rows"] == 2 and quoted["quote"]["requests"] == 2
    assert quoted["quote"]["cost_usd_p90"] > quoted["quote"]["cost_usd_p50"] > 0 and "--yes" in quoted["note"]
    billed_before = sum(server.billed.values())
    assert billed_before == 6  # the quote sent nothing

    tickets.update_project("tickets", budget_usd=tickets.spend("tickets") + 1e-7)  # no room for the worst case
    code, refused = cli(tickets.path, "--yes")
    assert code != 0 and "budget" in str(refused).lower() and sum(server.billed.values()) == billed_before
    tickets.update_project("tickets", budget_usd=None)

    code, done = cli(tickets.path, "--yes")
    assert code == 0, done
    assert (done["explained"], done["not_fitting"], done["requests"]) == (1, 1, 2)
    one, two, three = (tickets.get_item("tickets", r) for r in "143")
    assert one["label"] == "shipping" and "shipping matter" in one["rationale"]
    assert (one["teacher_label"], one["teacher_rationale"]) == (before["1"]["teacher_label"],
                                                               before["1"]["teacher_rationale"])
    assert two["label"] == "technical" and two["rationale"] == ""  # an argument for billing is not kept
    assert three["rationale"] == "My own reason."
    trail = tickets.audit_trail("tickets", "1")
    assert any(a["reviewer"] == "teacher" and a["field"] == "rationale" for a in trail)
    assert max(server.billed.values()) == 1 and sum(server.billed.values()) == 8

    code, again = cli(tickets.path, "--yes")  # only the disputed row is left; its answer is cached
    assert code == 0 and again["quote"]["rows"] == 1 and again["quote"]["requests"] == 0
    assert sum(server.billed.values()) == 8


def test_the_review_page_prices_then_asks_the_teacher_to_explain(app_store, serve_teacher):
    from core import jobs
    from core.label.teacher import label_project
    from tests.helpers import import_csv, open_page

    serve_teacher(explainer)
    import_csv(app_store)
    label_project(app_store, "tickets")
    review.save_review(app_store, "tickets", "1", "ana", "shipping", None)
    at = open_page("pages/4_Review.py", "tickets")
    panel = next(e for e in at.expander if e.label.startswith("Corrected labels without a rationale"))
    assert panel.label.endswith("(1)")
    next(b for b in at.button if b.key == "explain_price").click().run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Explanation requests"] == "1" and metrics["Explanation cost P90"].startswith("$")
    next(b for b in at.button if b.key == "explain_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = next(j for j in app_store.list_jobs("tickets", "label") if j["config"].get("explain_corrections"))
    assert jobs.wait(app_store, job["id"], timeout_s=120)["status"] == "completed"
    assert "shipping matter" in app_store.get_item("tickets", "1")["rationale"]
    at.run()
    assert next(e for e in at.expander if e.label.startswith("Corrected labels")).label.endswith("(0)")
