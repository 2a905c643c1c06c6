"""Reasons become prompt fixes: clusters of corrections, drafted amendments, and the priced
re-ask of the affected rows with the amended prompt (issue 15, part 4)."""

import pytest

from core.review import rules as review
from core.kernel.errors import AppError
from core.kernel.prices import load_prices
from core.review.prompt_fixes import (
    apply_amendment,
    correction_clusters,
    price_reask,
    reask_config,
)
from core.label.teacher import label_project


def test_corrections_cluster_by_confusion_reason_and_check(labeled):
    # ana corrects row 1 (teacher: billing) to technical, with a comment; flags row 3 with a reason
    review.save_review(labeled, "tickets", "1", "ana", "technical", None, comment="charges after a crash are bugs",
                       mode="first")
    review.save_review(labeled, "tickets", "3", "ana", None, None, verdict="flag", reason="right label, wrong reason",
                       mode="first")
    review.save_review(labeled, "tickets", "2", "ana", None, None, mode="first")  # an accept: no cluster
    clusters = {c.key: c for c in correction_clusters(labeled, "tickets")}
    confusion = clusters["confusion: billing -> technical"]
    assert confusion.count == 1 and confusion.examples[0]["row_id"] == "1"
    assert '"billing"' in confusion.amendment and '"technical"' in confusion.amendment
    assert "charges after a crash are bugs" in confusion.amendment
    assert confusion.affected == ["4"]  # the other unreviewed row the teacher called billing
    reason = clusters["reason: right label, wrong reason"]
    assert reason.count == 1 and set(reason.affected) == {"6"}  # unreviewed, teacher said shipping
    assert not any(c.examples[0]["row_id"] == "2" for c in clusters.values())


def test_reask_is_priced_first_then_sends_only_the_affected_rows_with_the_amended_prompt(labeled, fake):
    review.save_review(labeled, "tickets", "1", "ana", "technical", None, mode="first")
    cluster = next(c for c in correction_clusters(labeled, "tickets") if c.kind == "confusion")
    amendment = "Tell billing and technical apart: a charge caused by a crash is technical."
    version = labeled.template_version("tickets")
    fc = price_reask(labeled, "tickets", amendment, cluster.affected, load_prices())
    assert fc.rows == len(cluster.affected) == 1 and fc.cost_usd_p50 > 0
    assert labeled.template_version("tickets") == version  # pricing changed nothing
    sent_before = len(fake.requests)
    assert apply_amendment(labeled, "tickets", amendment) == version + 1
    cfg = reask_config("tickets", cluster.affected)
    label_project(labeled, "tickets", api_key="k", base_url=fake.url, row_ids=cfg.row_ids, relabel=cfg.relabel)
    sent = fake.requests[sent_before:]
    assert len(sent) == 1 and amendment in str(sent[0]["body"]["messages"])
    assert "charged twice" not in str(sent[0]["body"]) and "billed after cancelling" in str(sent[0]["body"])
    assert labeled.get_item("tickets", "1")["label"] == "technical"  # the reviewed row keeps its label


def test_amendments_that_would_break_the_prompt_are_refused(labeled):
    with pytest.raises(AppError, match="Write the amendment"):
        price_reask(labeled, "tickets", "   ", ["4"], load_prices())
    with pytest.raises(AppError, match="placeholders"):
        apply_amendment(labeled, "tickets", "Use {text} carefully")
    with pytest.raises(AppError, match="No unreviewed rows"):
        price_reask(labeled, "tickets", "Be careful.", [], load_prices())


def test_prompt_fixes_from_the_command_line(labeled, fake):
    import json
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    review.save_review(labeled, "tickets", "1", "ana", "technical", None, mode="first")

    def cli(*args):
        out = subprocess.run([sys.executable, "-m", "core", "prompt-fixes", "--db", str(labeled.path), "--project",
                              "tickets", "--json", *args], cwd=REPO, capture_output=True, text=True,
                             check=False, env={**os.environ, "ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": fake.url})
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    listed = {c["key"]: c for c in cli()["clusters"]}
    assert listed["confusion: billing -> technical"]["affected"] == 1
    done = cli("--apply", "confusion: billing -> technical", "--amendment", "A crash that charges twice is technical.")
    assert done["rows"] == 1 and done["forecast_usd_p50"] > 0 and done["template_version"] >= 2
    assert "A crash that charges twice is technical." in labeled.get_project("tickets").template


def test_apply_without_a_key_changes_nothing_and_a_retry_appends_the_amendment_once(labeled, fake):
    import json
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    review.save_review(labeled, "tickets", "1", "ana", "technical", None, mode="first")
    before = (labeled.template_version("tickets"), labeled.get_project("tickets").template)
    amendment = "A crash that charges twice is technical."

    def apply(key):
        env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
        env.update({"ANTHROPIC_BASE_URL": fake.url, **({"ANTHROPIC_API_KEY": key} if key else {})})
        return subprocess.run([sys.executable, "-m", "core", "prompt-fixes", "--db", str(labeled.path), "--project",
                               "tickets", "--json", "--apply", "confusion: billing -> technical", "--amendment",
                               amendment], cwd=REPO, capture_output=True, text=True, check=False, env=env)

    refused = apply(None)
    assert refused.returncode != 0 and "no API key is set" in refused.stderr + refused.stdout
    assert (labeled.template_version("tickets"), labeled.get_project("tickets").template) == before
    # a retry after a re-ask that failed once the prompt was saved: the amendment is not added twice
    assert apply_amendment(labeled, "tickets", amendment) == before[0] + 1
    assert apply_amendment(labeled, "tickets", amendment) == before[0] + 1
    done = apply("k")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["template_version"] == before[0] + 1
    assert labeled.get_project("tickets").template.count(amendment) == 1


def test_budget_command_shows_the_cap_and_clears_it_only_when_asked(labeled):
    import json
    import subprocess
    import sys

    from tests.helpers import REPO

    def budget(*args):
        out = subprocess.run([sys.executable, "-m", "core", "budget", "--db", str(labeled.path), "--project",
                              "tickets", "--json", *args], cwd=REPO, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert budget("--usd", "2.5")["budget_usd"] == 2.5
    shown = budget()
    assert shown["budget_usd"] == 2.5 and not shown["changed"] and labeled.get_project("tickets").budget_usd == 2.5
    assert shown["remaining_usd"] == pytest.approx(2.5 - shown["spent_usd"] - shown["reserved_usd"])
    cleared = budget("--clear")
    assert cleared["budget_usd"] is None and cleared["changed"] and labeled.get_project("tickets").budget_usd is None
