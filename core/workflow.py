"""Where a project stands in the workflow, in one sentence, and what to do next.

`project_stage` reads a few aggregate counts (one query for the rows, reviews, spot checks
and trained students; one for the jobs still active) and returns the first stage of the
workflow that is not done yet:

    no_data → no_prompt_tried → parse_rate_low → rows_unlabeled → no_spot_check → no_student → done

Each page shows the stage at its top (`ui.where_am_i`); the home page adds a checklist of the
six steps (`Stage.done`). A labeling or training job that is still running is mentioned in the
line. The text is plain English with numbers formatted for people; it names no project, row or
label, but the pages escape it anyway (`ui.plain`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.jobs import ACTIVE, processes

# The six steps of the workflow, named as the pages are.
STEPS = ("Data", "Prompt & budget", "Label", "Review", "Train", "Results")
# More than this share of unreadable (flagged) teacher answers means the prompt needs fixing.
PARSE_ALERT = 0.10


@dataclass(frozen=True)
class Stage:
    key: str        # one of the stage names above
    line: str       # where the project stands (one sentence, plus one about a running job)
    next_step: str  # what to do next, naming the page
    page: str = ""  # the step (page) the next step is on, one of STEPS
    done: frozenset[str] = field(default_factory=frozenset)  # steps already done, of STEPS


def count(n: int) -> str:
    """1234 -> '1,234'."""
    return f"{int(n):,}"


def percent(share: float) -> str:
    """0.125 -> '12.5%', 0.2 -> '20%', 0.0004 -> 'under 0.1%'."""
    if 0 < share < 0.001:
        return "under 0.1%"
    text = f"{share:.1%}"
    return text.replace(".0%", "%")


def _rows(n: int) -> str:
    return f"{count(n)} row" + ("" if n == 1 else "s")


def _live(job: dict) -> bool:
    """An active job whose process is still there (a job whose process died stays 'running' in
    its row until the Label or Train page notices; it is not mentioned). A queued job has no
    process yet."""
    if job["status"] == "queued" and not job["pid"]:
        return True
    return bool(job["pid"]) and processes.alive(job)


def _job_sentence(job: dict) -> str:
    verb = {"queued": "is waiting to start", "running": "is running", "stopping": "is stopping"}[job["status"]]
    if job["kind"] == "label":
        done, total = job["done"] or 0, job["total"] or 0
        progress = f" ({count(done)} of {count(total)} rows answered)" if total else ""
        return f"A labeling job {verb}{progress}."
    if job["kind"] == "sweep":
        progress = f" ({count(job['done'] or 0)} of {count(job['total'])} runs done)" if job["total"] else ""
        return f"A training sweep {verb}{progress}."
    if job["kind"] == "train":
        step, total = job["step"], job["total"] or 0
        progress = f" (step {count(step)} of {count(total)})" if step is not None and total else ""
        return f"A training run {verb}{progress}."
    return f"A {job['kind']} job {verb}."


def running_jobs(store, project: str) -> list[dict]:
    """The project's labeling and training jobs that are queued, running or stopping, with a live
    process; a training run of a sweep that is itself listed is left out (the sweep stands for it)."""
    jobs = [j for j in store.jobs_with_status(project, list(ACTIVE)) if _live(j)]
    sweeps = {j["id"] for j in jobs if j["kind"] == "sweep"}
    return [j for j in jobs if j["parent_id"] not in sweeps]


def project_stage(store, project: str) -> Stage:
    """Where `project` stands and what to do next (two aggregate queries)."""
    c = store.stage_counts(project)
    total, flagged, errors = c["total"], c["flagged"], c["errors"]
    answered = c["labeled"] + flagged
    unanswered = total - answered
    flagged_share = flagged / answered if answered else 0.0
    jobs = running_jobs(store, project)
    labeling = any(j["kind"] == "label" for j in jobs)
    training = any(j["kind"] in ("train", "sweep") for j in jobs)
    done = {step for step, ok in (
        ("Data", total > 0),
        ("Prompt & budget", answered > 0 and flagged_share <= PARSE_ALERT),
        ("Label", total > 0 and unanswered == 0),
        ("Review", c["reviewed"] > 0),
        ("Train", c["students"] > 0),
    ) if ok}

    def stage(key: str, line: str, next_step: str, page: str) -> Stage:
        running = " ".join(_job_sentence(j) for j in jobs)
        return Stage(key, f"{line} {running}".strip(), next_step, page, frozenset(done))

    if total == 0:
        return stage("no_data", "This project has no rows yet.",
                     "Import a file on the Data page.", "Data")
    if answered == 0:
        if labeling:
            return stage("no_prompt_tried", f"{_rows(total)} imported; the teacher has not answered any yet.",
                         "Follow the labeling job on the Label page.", "Label")
        if errors:
            return stage("no_prompt_tried",
                         f"{_rows(total)} imported; every teacher call so far failed ({_rows(errors)} with API errors).",
                         "See why the calls failed on the Label page, then label again.", "Label")
        return stage("no_prompt_tried", f"{_rows(total)} imported; no prompt has been tried on them yet.",
                     "Write a prompt on the Prompt & budget page and try it on a few rows there.", "Prompt & budget")
    if flagged_share > PARSE_ALERT:
        line = (f"{percent(flagged_share)} of the teacher's {count(answered)} answers could not be read "
                f"({count(flagged)} flagged).")
        if labeling:
            return stage("parse_rate_low", line,
                         "Consider pausing the labeling job on the Label page and fixing the prompt or the "
                         "label words on the Prompt & budget page.", "Prompt & budget")
        return stage("parse_rate_low", line,
                     "Fix the prompt or the label words on the Prompt & budget page (new label words re-read "
                     "the stored answers at no cost).", "Prompt & budget")
    if unanswered:
        after_errors = f", {count(errors)} of them after API errors" if errors else ""
        line = f"{count(unanswered)} of {_rows(total)} have no teacher answer yet{after_errors}."
        if labeling:
            return stage("rows_unlabeled", line, "Follow the labeling job on the Label page.", "Label")
        return stage("rows_unlabeled", line, "Label them on the Label page.", "Label")
    answered_line = (f"All {_rows(total)} have a teacher answer"
                     + (f" ({percent(flagged_share)} flagged as unreadable)" if flagged else ""))
    if c["reviewed"] == 0:
        if c["spot_rows"]:
            return stage("no_spot_check",
                         f"{answered_line}; a spot-check set of {_rows(c['spot_rows'])} is waiting, none reviewed yet.",
                         "Review it on the Review page (pick the 'spot check' filter).", "Review")
        return stage("no_spot_check", f"{answered_line}, and none has been reviewed yet.",
                     "Create a spot-check set on the Review page and check a sample of the teacher's answers.",
                     "Review")
    reviewed = f"{count(c['reviewed'])} of {_rows(total)} reviewed"
    if c["students"] == 0 and not training and c["spot_rows"] and c["spot_reviewed"] < c["spot_rows"]:
        # a spot check in progress stays the next step: training before it ends trains on unchecked labels
        return stage("spot_check_open", f"{reviewed}; the spot check is {count(c['spot_reviewed'])} of "
                                        f"{count(c['spot_rows'])} done.",
                     "Finish it on the Review page (the 'spot check' filter): its error estimate says whether the "
                     "teacher's labels are good enough to train on.", "Review")
    if c["students"] == 0:
        if training:
            return stage("no_student", f"{reviewed}; the first student is being trained.",
                         "Follow the training on the Train page.", "Train")
        return stage("no_student", f"{reviewed}; no student has been trained yet.",
                     "Train a student on the Train page.", "Train")
    trained = "1 student trained" if c["students"] == 1 else f"{count(c['students'])} students trained"
    return stage("done", f"{reviewed}; {trained}.",
                 "Compare the runs and save the best student on the Results page.", "Results")
