"""Reasons become prompt fixes: the experts' corrections grouped into clusters, each with
example rows and a drafted amendment to the prompt, and the re-ask of the rows the amendment
concerns with the amended prompt (priced first, through the normal labeling path).

Clusters come from the current review decisions that did not take the teacher's answer as is:
- `confusion`: the teacher said A, the expert corrected it to B (projects with a label set);
- `reason`: the reason code experts gave (flagged or rejected rows);
- `check`: an automatic rationale check flagged the row and the expert did not accept it.
The rows an amendment re-asks are the unreviewed rows the same mistake can be in: those the
teacher labeled A (confusion), those the check flagged (check), those whose teacher label
appears among the cluster's rows (reason). Reviewed rows keep their reviewer's label anyway.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from core.kernel.errors import AppError

EXAMPLES_PER_CLUSTER = 3

REASON_FIXES = {
    "wrong label": "Read the whole input before choosing the label; reviewers found wrong labels in answers like "
                   "these.",
    "unfaithful rationale": "The rationale must state the facts from the input that decide the label, and it "
                            "must support the label you give.",
    "right label, wrong reason": "Give the reason that actually decides the label, quoting the words of the input "
                                 "it rests on; a reason that would fit another label is wrong.",
    "unclear input": "When the input does not decide the label, say so in the rationale instead of guessing.",
    "other": "Reviewers corrected answers like these.",
}
CHECK_FIXES = {
    "leakage": "Do not restate the label as the rationale: explain which words of the input lead to it.",
    "contradiction": "The rationale must argue for the label you give, not for another option.",
    "ungrounded": "Base the rationale only on what the input says.",
    "boilerplate": "Write a rationale specific to this input, not a sentence that would fit any input.",
    "length": "Keep the rationale to one or two sentences about this input.",
}


@dataclass
class Cluster:
    key: str                      # what identifies it, e.g. "confusion: billing -> account"
    kind: str                     # confusion | reason | check
    count: int                    # corrections in it
    examples: list[dict]          # row_id, input, teacher_label, label, rationale, comment
    amendment: str                # the drafted sentence(s) to add to the prompt
    affected: list[str] = field(default_factory=list)  # unreviewed rows a re-ask would send


def _snippet(inputs: dict, limit: int = 160) -> str:
    text = " | ".join(str(v) for v in inputs.values())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _comments(rows: list[dict]) -> str:
    notes = list(dict.fromkeys(r["comment"].strip() for r in rows if r.get("comment") and r["comment"].strip()))
    return (" Reviewers noted: " + "; ".join(notes[:3]) + ".") if notes else ""


def _confusion_text(a: str, b: str, rows: list[dict]) -> str:
    example = rows[0]
    return (f'Tell "{a}" and "{b}" apart: reviewers corrected {len(rows)} answer(s) of "{a}" to "{b}". '
            f'For example, "{_snippet(example["inputs"], 120)}" is "{b}", not "{a}".' + _comments(rows))


def _example(r: dict) -> dict:
    return {"row_id": r["row_id"], "input": _snippet(r["inputs"]), "teacher_label": r["teacher_label"],
            "label": r["label"], "rationale": r["teacher_rationale"], "comment": r.get("comment")}


def correction_clusters(store, project: str) -> list[Cluster]:
    """Clusters of corrections, largest first, each with examples, a draft and affected rows."""
    spec = store.get_project(project)
    rows = store.corrections(project)
    if not rows:
        return []
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        if spec.label_set and r["label_changed"] and r["teacher_label"] and r["label"]:
            groups[("confusion", f"{r['teacher_label']} -> {r['label']}")].append(r)
        if r["reason"]:
            groups[("reason", r["reason"])].append(r)
        for check in r["flags"] or []:
            groups[("check", check)].append(r)
    clusters = []
    for (kind, name), members in groups.items():
        if kind == "confusion":
            a, b = name.split(" -> ", 1)
            text, affected = _confusion_text(a, b, members), store.unreviewed_answered(project, teacher_labels=[a])
        elif kind == "check":
            text = CHECK_FIXES.get(name, "Reviewers corrected answers like these.") + _comments(members)
            affected = store.unreviewed_answered(project, check=name)
        else:
            text = REASON_FIXES.get(name, REASON_FIXES["other"]) + _comments(members)
            labels = sorted({m["teacher_label"] for m in members if m["teacher_label"] is not None})
            affected = store.unreviewed_answered(project, teacher_labels=labels)
        clusters.append(Cluster(f"{kind}: {name}", kind, len(members),
                                [_example(m) for m in members[:EXAMPLES_PER_CLUSTER]], text, affected))
    return sorted(clusters, key=lambda c: (-c.count, c.key))


def amended_template(template: str, amendment: str) -> str:
    """The project's prompt with the expert's amendment added as a final instruction."""
    text = (amendment or "").strip()
    if not text:
        raise AppError("Write the amendment first: the prompt would not change.")
    if "{" in text or "}" in text:
        raise AppError("The amendment may not contain { or }: they are the prompt's placeholders.")
    return template.rstrip() + "\n\n" + text


def price_reask(store, project: str, amendment: str, row_ids: list[str], prices):
    """The forecast of re-asking `row_ids` with the amended prompt, before anything changes."""
    from core.prompt.forecast import forecast

    if not row_ids:
        raise AppError("No unreviewed rows to re-ask for this cluster.")
    spec = store.get_project(project)
    return forecast(store, project, prices, relabel="stale", row_ids=row_ids,
                    template=amended_template(spec.template, amendment))


def check_reask(fc, api_key: str | None, override: bool = False) -> None:
    """Refuse a re-ask before the prompt changes (the page and the CLI): requests to send with
    no API key (ConfigError), or a P90 over the remaining budget (BudgetExceeded)."""
    from core.kernel.errors import BudgetExceeded, ConfigError
    from core.prompt.forecast import check_budget

    if fc.rows and not api_key:
        raise ConfigError(f"Re-asking sends {fc.rows} request(s) to the teacher, and no API key is set. Set "
                          "ANTHROPIC_API_KEY in the environment or in Streamlit secrets. Nothing was changed.")
    refusal = check_budget(fc, override)
    if refusal:
        raise BudgetExceeded(refusal)


def apply_amendment(store, project: str, amendment: str) -> int:
    """Save the amended prompt as the project's prompt (a new template version) and return that
    version. Rows answered by the older prompt become stale; the re-ask sends only the chosen ones.
    A prompt that already ends with this amendment (a retry after a failed re-ask) is kept as is."""
    spec = store.get_project(project)
    if not spec.template.rstrip().endswith("\n\n" + (amendment or "").strip()):
        store.update_project(project, template=amended_template(spec.template, amendment))
    return store.template_version(project)


def reask_config(project: str, row_ids: list[str], model: str | None = None):
    """The labeling run that re-asks exactly these rows with the project's (amended) prompt."""
    from core.label.config import LabelConfig

    return LabelConfig(project, model=model, row_ids=list(row_ids), relabel="stale").validate()
