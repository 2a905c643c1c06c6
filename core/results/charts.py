"""Results charts (Altair): training loss, held-out accuracy over steps, accuracy against the
rationale fraction and against teacher spend, the confusion matrix; and their PNG/SVG bytes.
Accuracy charts draw what a run must beat (core.results.runs.baselines) as labelled rules."""

from __future__ import annotations

from core.db import Store
from core.kernel.errors import ConfigError
from core.results.runs import is_label_only, objective_name

LOSSES = {"train_loss": "total", "label_loss": "label", "rationale_loss": "rationale"}


def _reference_layers(reference: dict | None, title: str):
    """Labelled horizontal rules (majority-class baseline, teacher accuracy) for an accuracy
    chart whose y axis is a share from 0 to 1; [] when there is nothing to draw."""
    import altair as alt

    if not reference:
        return []
    lines = []
    if reference.get("majority_baseline") is not None:
        always = f" (always {reference['majority_label']!r})" if reference.get("majority_label") is not None else ""
        lines.append({"line": "majority-class baseline", "value": reference["majority_baseline"],
                      "label": f"majority-class baseline{always}: {reference['majority_baseline']:.2f}"})
    if reference.get("teacher_accuracy") is not None:
        lines.append({"line": "teacher accuracy", "value": reference["teacher_accuracy"],
                      "label": f"teacher accuracy against gold: {reference['teacher_accuracy']:.2f}"})
    if not lines:
        return []
    base = alt.Chart(_frame(lines)).encode(
        y=alt.Y("value:Q", title=title, scale=alt.Scale(domain=[0, 1])))
    rule = base.mark_rule(color="#666", strokeDash=[5, 4]).encode(
        tooltip=["line", alt.Tooltip("value:Q", format=".3f")])
    text = base.mark_text(align="left", baseline="bottom", dx=3, dy=-2, color="#444").encode(
        x=alt.value(0), text="label:N")
    return [rule, text]


def _frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows)


def loss_chart(store: Store, run_ids: list[str]):
    import altair as alt

    rows = [{"run": m["job_id"], "step": m["step"], "task": LOSSES[m["name"]], "loss": m["value"]}
            for m in store.metrics(run_ids) if m["name"] in LOSSES]
    if not rows:
        return None
    return alt.Chart(_frame(rows), title="Training loss per task").mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", scale=alt.Scale(zero=False)), color="run:N", strokeDash="task:N",
        tooltip=["run", "task", "step", alt.Tooltip("loss:Q", format=".4f")])


def accuracy_steps_chart(store: Store, run_ids: list[str], reference: dict | None = None):
    """Held-out accuracy (against gold) and teacher agreement at each evaluation, with the
    majority-class baseline and the teacher's accuracy as labelled rules (`reference`: baselines())."""
    import altair as alt

    names = {"val_accuracy": "validation accuracy (vs gold)", "val_teacher_agreement": "validation agreement with teacher",
             "test_accuracy": "test accuracy (once, chosen step)", "teacher_agreement": "test agreement with teacher"}
    rows = [{"run": m["job_id"], "step": m["step"], "metric": names[m["name"]], "value": m["value"]}
            for m in store.metrics(run_ids) if m["name"] in names]
    if not rows:
        return None
    lines = alt.Chart(_frame(rows)).mark_line(point=True).encode(
        x="step:Q", y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title="share of held-out rows"), color="run:N",
        strokeDash="metric:N", tooltip=["run", "metric", "step", alt.Tooltip("value:Q", format=".3f")])
    return alt.layer(lines, *_reference_layers(reference, "share of held-out rows"),
                     title="Accuracy over steps: validation rows, and the test rows once")


def _finished(table: list[dict]) -> list[dict]:
    return [r for r in table if r["test_accuracy"] is not None and r["status"] in ("completed", "cancelled")]


def _named(rows: list[dict]) -> list[dict]:
    return [{**r, "objective": objective_name(r["objective"])} for r in rows]


def fraction_chart(table: list[dict], reference: dict | None = None):
    """Accuracy against rationale fraction: one point per multi-task run, their mean as a line;
    label-only runs (no rationales, so no fraction) as a labelled rule at their mean accuracy,
    with the majority-class baseline and the teacher's accuracy (`reference`)."""
    import altair as alt

    rows = _finished(table)
    multi = _named([r for r in rows if not is_label_only(r)])
    label_only = [r for r in rows if is_label_only(r)]
    if not rows:
        return None
    title = "test accuracy"
    layers = []
    if multi:
        base = alt.Chart(_frame(multi))
        layers.append(base.mark_point(filled=True, size=70).encode(
            x=alt.X("rationale_fraction:Q", scale=alt.Scale(domain=[0, 1]), title="rationale fraction"),
            y=alt.Y("test_accuracy:Q", title=title, scale=alt.Scale(domain=[0, 1])), color="objective:N",
            tooltip=["run", "objective", "rationale_fraction", "seed", alt.Tooltip("test_accuracy:Q", format=".3f")]))
        layers.append(base.mark_line().encode(x="rationale_fraction:Q", y=alt.Y("mean(test_accuracy):Q", title=title),
                                              color="objective:N"))
    if label_only:
        mean = sum(r["test_accuracy"] for r in label_only) / len(label_only)
        runs = f"{len(label_only)} runs, mean" if len(label_only) > 1 else "1 run"
        line = alt.Chart(_frame([{"line": "label-only", "value": mean, "label": f"label-only ({runs}): {mean:.2f}"}]))
        enc = line.encode(y=alt.Y("value:Q", title=title, scale=alt.Scale(domain=[0, 1])))
        layers += [enc.mark_rule(color="#d62728").encode(tooltip=["line", alt.Tooltip("value:Q", format=".3f")]),
                   enc.mark_text(align="left", baseline="top", dx=3, dy=3, color="#d62728").encode(
                       x=alt.value(0), text="label:N")]
    if not multi:  # only label-only runs: give the x axis its meaning anyway
        layers.insert(0, alt.Chart(_frame([{"rationale_fraction": 0.0}, {"rationale_fraction": 1.0}])).mark_point(
            opacity=0).encode(x=alt.X("rationale_fraction:Q", scale=alt.Scale(domain=[0, 1]), title="rationale fraction")))
    return alt.layer(*layers, *_reference_layers(reference, title), title="Accuracy against rationale fraction")


def cost_chart(table: list[dict], reference: dict | None = None):
    """The cost-quality frontier: accuracy against the teacher dollars a run trained on, with
    the majority-class baseline and the teacher's accuracy (`reference`) as labelled rules."""
    import altair as alt

    rows = _named([r for r in _finished(table) if r["teacher_usd"] is not None])
    if not rows:
        return None
    title = "test accuracy"
    points = alt.Chart(_frame(rows)).mark_point(filled=True, size=70).encode(
        x=alt.X("teacher_usd:Q", title="teacher $ behind the training rows"),
        y=alt.Y("test_accuracy:Q", title=title, scale=alt.Scale(domain=[0, 1])),
        color="objective:N", shape="label_source:N",
        tooltip=["run", "objective", "label_source", "rationale_fraction", alt.Tooltip("teacher_usd:Q", format="$.4f"),
                 alt.Tooltip("test_accuracy:Q", format=".3f")])
    return alt.layer(points, *_reference_layers(reference, title), title="Accuracy against teacher spend")


def confusion_chart(matrix: dict):
    import altair as alt

    rows = [{"gold": g, "predicted": p, "count": n} for g, row in matrix["counts"].items() for p, n in row.items()]
    if not rows:
        return None
    base = alt.Chart(_frame(rows), title="Confusion matrix (held-out rows with gold)").encode(
        x=alt.X("predicted:N"), y=alt.Y("gold:N"))
    return base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues"))) + \
        base.mark_text().encode(text="count:Q")


def chart_bytes(chart, fmt: str) -> bytes:
    """PNG or SVG of a chart, rendered offline (vl-convert, no browser)."""
    import vl_convert as vlc

    spec = chart.to_json()
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec).encode()
    if fmt == "png":
        return vlc.vegalite_to_png(spec, scale=2)
    raise ConfigError(f"chart format must be png or svg, not {fmt!r}")


def reliability_chart(calibration: dict):
    """Accuracy against mean confidence per confidence bin, before and after temperature
    scaling, with the diagonal a calibrated student would follow."""
    import altair as alt

    rows = [{**b, "when": when, "bin": f"{b['lo']:.1f}–{b['hi']:.1f}"}
            for when, key in (("before (T = 1)", "reliability_before"),
                              (f"after (T = {calibration['temperature']:.2f})", "reliability_after"))
            for b in calibration[key]]
    if not rows:
        return None
    diagonal = alt.Chart(_frame([{"x": 0, "y": 0}, {"x": 1, "y": 1}])).mark_line(
        color="#999", strokeDash=[4, 4]).encode(x="x:Q", y="y:Q")
    base = alt.Chart(_frame(rows), title="Reliability: is the student right as often as it is sure?").encode(
        x=alt.X("confidence:Q", title="mean confidence in the bin", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("accuracy:Q", title="share right (gold, else the teacher's label)", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("when:N", title=None),
        tooltip=["when", "bin", "rows", alt.Tooltip("confidence:Q", format=".3f"),
                 alt.Tooltip("accuracy:Q", format=".3f")])
    # a line per series, and a point per bin sized by its rows (big enough to see with one row)
    return diagonal + base.mark_line() + base.mark_circle(opacity=0.85).encode(
        size=alt.Size("rows:Q", title="rows in the bin", scale=alt.Scale(range=[60, 500])))


def frontier_charts(front: dict, chosen: dict | None):
    """Accuracy against the share sent to the teacher, and against cost per 1,000 rows, one
    point per threshold; the chosen threshold is marked. The cost chart is None without a
    teacher price."""
    import math

    import altair as alt

    rows = [{**p, "threshold": "every row" if math.isinf(p["threshold"]) else f"{p['threshold']:.2f}"}
            for p in front["points"] if p["accuracy"] is not None]
    if not rows:
        return None, None
    tooltip = ["threshold", alt.Tooltip("share_to_teacher:Q", format=".1%", title="to teacher"),
               alt.Tooltip("accuracy:Q", format=".3f"), alt.Tooltip("usd_per_1000:Q", format="$.4f")]
    y = alt.Y("accuracy:Q", title=front["measure"], scale=alt.Scale(zero=False))
    mark = [{**chosen, "threshold": "chosen"}] if chosen else []

    def chart(x, title):
        line = alt.Chart(_frame(rows), title=title).mark_line(point=True).encode(x=x, y=y, tooltip=tooltip)
        if not mark:
            return line
        return line + alt.Chart(_frame(mark)).mark_point(size=200, color="#d62728", filled=True).encode(x=x, y=y)

    share = chart(alt.X("share_to_teacher:Q", title="share of rows sent to the teacher", axis=alt.Axis(format="%")),
                  "Accuracy against the share sent to the teacher")
    if any(r["usd_per_1000"] is None for r in rows):
        return share, None
    return share, chart(alt.X("usd_per_1000:Q", title="cost per 1,000 rows ($)"),
                        "Accuracy against cost per 1,000 rows")
