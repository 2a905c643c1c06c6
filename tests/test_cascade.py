"""The student in production: calibrated confidence, the cascade to the teacher (routing, the
cap), the serving endpoint (in a thread and as `core serve`), `predict --file --cascade`, and
`core savings`."""

import json
import math
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from core.cli.main import main as cli_main
from core.db import Store
from core.label.teacher import label_project
from core.results.cascade import cascade_report, frontier, pick_threshold, point_at, saving_sentence
from core.student.cascade import Cascade
from core.student.predict import Student, load_student_model
from core.train.base_models import load_student
from core.train.calibration import (
    confidence,
    expected_calibration_error,
    fit_temperature,
    reliability,
    softmax,
)
from core.train.run import Run
from core.train.trainer import TrainConfig
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import correct_responder, many_tickets, start_cli, trained_run


# ---- confidence and calibration (pure) --------------------------------------------------------
def test_softmax_sums_to_one_and_temperature_flattens_it():
    p = softmax([-1.0, -2.0, -4.0], 1.0)
    assert sum(p) == pytest.approx(1.0)
    assert p[0] == pytest.approx(math.exp(-1) / (math.exp(-1) + math.exp(-2) + math.exp(-4)))
    hot = softmax([-1.0, -2.0, -4.0], 3.0)
    assert sum(hot) == pytest.approx(1.0) and hot[0] < p[0]  # a higher temperature is less sure
    assert confidence([-1.0, -2.0], None, False, 1.0) == 0.0  # an answer outside the label set
    assert confidence([math.log(0.25)], None, True, 2.0) == pytest.approx(0.5)  # open answer: p ** (1/T)


def test_ece_on_hand_computed_bins():
    # two rows at 0.95 (one right), two at 0.25 (both wrong): |0.5-0.95|*0.5 + |0-0.25|*0.5 = 0.35
    assert expected_calibration_error([0.95, 0.95, 0.25, 0.25], [True, False, False, False]) == pytest.approx(0.35)
    bins = reliability([0.95, 0.95, 0.25, 0.25], [True, False, False, False])
    assert [(b["lo"], b["rows"], b["accuracy"]) for b in bins] == [(0.2, 2, 0.0), (0.9, 2, 0.5)]
    assert expected_calibration_error([], []) is None


def test_temperature_scaling_fixes_an_overconfident_student():
    # a student always ~97% sure but right 60% of the time: the fitted T flattens it, ECE falls
    records = [{"scores": [0.0, -3.5, -4.0], "index": 0, "open": False, "correct": i % 5 < 3} for i in range(100)]
    t = fit_temperature(records)
    before = [confidence(r["scores"], 0, False, 1.0) for r in records]
    after = [confidence(r["scores"], 0, False, t) for r in records]
    correct = [r["correct"] for r in records]
    assert t > 1
    assert expected_calibration_error(after, correct) < expected_calibration_error(before, correct) / 3
    assert sum(after) / len(after) == pytest.approx(0.6, abs=0.03)
    assert fit_temperature([{**r, "correct": None} for r in records]) == 1.0  # nothing graded: not fitted


# ---- the frontier (pure) ----------------------------------------------------------------------------
ROWS = [  # prediction, confidence, gold, teacher
    {"prediction": "a", "confidence": 0.9, "gold": "a", "teacher": "a"},
    {"prediction": "b", "confidence": 0.8, "gold": "b", "teacher": "b"},
    {"prediction": "a", "confidence": 0.3, "gold": "b", "teacher": "b"},
    {"prediction": "a", "confidence": 0.2, "gold": "c", "teacher": "a"},
]


def test_frontier_on_hand_computed_rows():
    front = frontier(ROWS, "classification", teacher_row=0.002, student_row=0.0001)
    assert front["teacher_accuracy"] == 0.75 and front["student_accuracy"] == 0.5
    at = {p["threshold"]: p for p in front["points"]}
    assert at[0.0]["share_to_teacher"] == 0 and at[0.0]["accuracy"] == 0.5
    assert at[0.0]["usd_per_1000"] == pytest.approx(0.1)             # the student alone
    assert at[0.5]["share_to_teacher"] == 0.5 and at[0.5]["accuracy"] == 0.75
    assert at[0.5]["usd_per_1000"] == pytest.approx(1000 * (0.0001 + 0.5 * 0.002))
    assert at[math.inf]["share_to_teacher"] == 1 and at[math.inf]["accuracy"] == 0.75
    best = pick_threshold(front)  # 98% of 0.75: the fewest rows that reach it
    assert best["share_to_teacher"] == 0.5 and best["threshold"] == 0.31
    assert pick_threshold(front, target_accuracy=0.99) is None
    assert point_at(front, 0.555)["threshold"] == 0.55
    sentence = saving_sentence(front, best)
    assert "50% of rows" in sentence and "0.750 against 0.750" in sentence and "less" in sentence


def test_frontier_without_gold_measures_agreement_and_without_teacher_price_says_so():
    rows = [{**r, "gold": None} for r in ROWS]
    front = frontier(rows, "classification", teacher_row=None, student_row=None)
    assert front["measure"] == "agreement with the teacher" and front["teacher_accuracy"] == 1.0
    assert all(p["usd_per_1000"] is None for p in front["points"])
    assert "cannot be stated" in saving_sentence(front, point_at(front, 0.5))


# ---- a trained run ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory, fake_module):
    store = Store(tmp_path_factory.mktemp("cascade") / "c.duckdb")
    many_tickets(store, 40)
    label_project(store, "tickets", api_key="k", base_url=fake_module.url)
    job_id = trained_run(store, "tickets")
    assert store.get_job(job_id)["status"] == "completed"
    return store, job_id


def test_training_calibrates_on_validation_and_reports_ece_on_test_rows(run):
    store, job_id = run
    folder = Run.find(store, job_id).folder
    record = json.loads((folder / "calibration.json").read_text())
    held_out = store.predictions(job_id, "all", limit=1000)
    assert sorted(r["row_id"] for r in record["rows"]) == sorted(p["row_id"] for p in held_out)
    assert record["fitted_on_rows"] == len(Run.find(store, job_id).validation_rows(store.items_by_order("tickets", None)))
    assert record["ece_before"] is not None and record["ece_after"] is not None
    assert json.loads((folder / "model" / "calibration.json").read_text())["temperature"] == record["temperature"]
    assert load_student_model(folder / "model").temperature == record["temperature"]


def test_confidence_sums_to_one_over_the_label_set(run):
    store, job_id = run
    student = load_student_model(Run.find(store, job_id).model_dir())
    out = student.predict(["I was charged twice", "the app crashes", "where is my parcel"])
    for row in out:
        assert list(row["probabilities"]) == student.label_set
        assert sum(row["probabilities"].values()) == pytest.approx(1.0)
        assert row["confidence"] == pytest.approx(row["probabilities"].get(row["label"], 0.0))


def test_confidence_over_each_rows_choices_and_for_open_answers(tmp_path):
    model, tokenizer = load_student("tiny-random")
    mc = Student(model, tokenizer, tmp_path, "fp32", {"task": "multiple-choice", "input_fields": ["question"]})
    choices = [["red", "green", "blue"], ["yes", "no"]]
    out = mc.predict(["Which colour?", "Is it?"], choices=choices)
    for row, cs in zip(out, choices):
        assert list(row["probabilities"]) == cs and sum(row["probabilities"].values()) == pytest.approx(1.0)
    numeric = Student(model, tokenizer, tmp_path, "fp32", {"task": "numeric", "input_fields": ["question"]})
    for row in numeric.predict(["3 apples and 4 more?"]):
        assert 0 < row["confidence"] <= 1 and "probabilities" not in row


def test_the_run_report_and_model_card_state_calibration_and_the_cascade(run):
    from core.results.reports import model_card, run_facts, run_report

    store, job_id = run
    record = json.loads((Run.find(store, job_id).folder / "calibration.json").read_text())
    md = run_report(store, job_id, "md")
    assert "## Confidence and the cascade" in md
    assert f"{record['temperature']:.3f} on {record['fitted_on_rows']} rows" in md
    assert cascade_report(store, job_id)["sentence"] in md
    assert "## Confidence and the cascade" in model_card(run_facts(store, job_id))


def test_calibrating_a_run_from_before_calibration(run):
    store, job_id = run
    folder = Run.find(store, job_id).folder
    saved = (folder / "calibration.json").read_text()
    (folder / "calibration.json").unlink()
    with pytest.raises(Exception, match="no confidence calibration"):
        cascade_report(store, job_id)
    report = cascade_report(store, job_id, compute=True)
    by_row = lambda text: {r["row_id"]: (r["prediction"], round(r["confidence"], 6))  # noqa: E731
                           for r in json.loads(text)["rows"]}
    assert by_row((folder / "calibration.json").read_text()) == by_row(saved)  # the same rows, predictions, confidence
    assert report["frontier"]["rows"] == len(json.loads(saved)["rows"])


# ---- the live cascade ---------------------------------------------------------------------------------
class FixedConfidence(Student):
    """The run's student, with the confidence each text is given here (routing is what is tested)."""

    def __init__(self, student: Student, confidences: dict[str, float]):
        super().__init__(student.model, student.tokenizer, student.path, student.format, student.config)
        self.confidences = confidences

    def predict(self, texts, rationale=False, batch_size=16, choices=None, with_confidence=True):
        out = super().predict(texts, rationale, batch_size, choices, with_confidence=False)
        for row in out:
            row["confidence"] = self.confidences[row["input"]]
        return out


def _teacher_saw(server: FakeAnthropic) -> list[str]:
    return [r["body"]["messages"][-1]["content"] for r in server.requests if r["fault"] is None]


def test_the_cascade_sends_exactly_the_rows_under_the_threshold(run, serve_teacher):
    store, job_id = run
    server = serve_teacher(correct_responder)
    base = load_student_model(Run.find(store, job_id).model_dir())
    texts = {f"Order {i} was charged twice on my card": 0.1 * i for i in range(10)}
    student = FixedConfidence(base, texts)
    cascade = Cascade(student, store, "tickets", threshold=0.45)
    spent_before = store.spend("tickets")
    out = cascade.answer([{"text": t} for t in texts], rationale=True)
    under = [t for t, c in texts.items() if c < 0.45]
    seen = _teacher_saw(server)
    assert len(seen) == len(under) == 5
    assert all(any(t in body for body in seen) for t in under)
    for (text, conf), rec in zip(texts.items(), out):
        assert rec["deferred"] == (conf < 0.45)
        assert rec["answered_by"] == ("teacher" if conf < 0.45 else "student")
        assert rec["rationale"]  # the teacher's, or the student's own
        if rec["answered_by"] == "teacher":
            assert rec["label"] == "billing"
    assert cascade.counts == {"rows": 10, "deferred": 5, "teacher_answered": 5, "teacher_failed": 0}
    assert cascade.spent_usd() == pytest.approx(store.spend("tickets") - spent_before) and cascade.spent_usd() > 0
    assert store.count_items("tickets")["total"] == 40  # nothing was added to the project's rows
    again = cascade.answer([{"text": t} for t in under], rationale=False)  # the same rows: the cache answers
    assert len(_teacher_saw(server)) == 5 and all(r["answered_by"] == "teacher" for r in again)


def test_the_cascades_cap_stops_teacher_calls_and_the_student_answers_the_rest(run, serve_teacher):
    store, job_id = run
    server = serve_teacher(correct_responder)
    base = load_student_model(Run.find(store, job_id).model_dir())
    texts = {f"Shipment {i} never arrived at the depot": 0.0 for i in range(12)}
    cap = 0.0025  # a few worst cases (200 max tokens on the priced model), far fewer than 12
    cascade = Cascade(FixedConfidence(base, texts), store, "tickets", threshold=0.5, cap_usd=cap, concurrency=2)
    out = cascade.answer([{"text": t} for t in texts], rationale=False)
    sent = len(_teacher_saw(server))
    assert 0 < sent < 12
    assert cascade.spent_usd() <= cap
    refused = [r for r in out if r["answered_by"] == "student"]
    assert len(refused) == 12 - sent and all("budget cap" in r["teacher_error"] for r in refused)
    assert cascade.counts["teacher_failed"] == len(refused)


def test_concurrent_deferred_rows_share_one_rate_limiter(run, monkeypatch):
    """20 requests deferring at once, as a server's clients do, under a 120 requests/minute limit
    (2 a second, a one-second burst): paced together, every row is answered and the API hardly
    ever has to answer 429."""
    store, job_id = run
    server = FakeAnthropic(responder=correct_responder, rpm=120, burst_s=1.0).start()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    try:
        cascade = Cascade(load_student_model(Run.find(store, job_id).model_dir()), store, "tickets", threshold=0.5)
        together = threading.Barrier(20)  # as after one model pass: every request defers at the same moment
        answers: list = []

        def request(i: int) -> None:
            together.wait()
            answers.extend(cascade.ask([{"text": f"Invoice {i} charged twice, ref {i * 7}"}], [None]))

        threads = [threading.Thread(target=request, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(answers) == 20 and all(a["ok"] for a in answers)
        assert server.rate_limited <= 2  # at most a probe's edge; a limiter per request saw ~50 and lost 5-6 rows
    finally:
        server.stop()


# ---- the endpoint ---------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url + "/predict", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(url: str, path: str = "/health") -> dict:
    with urllib.request.urlopen(url + path, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def endpoint(run, serve_teacher):
    """start(cascade=None) -> url of the run's student served by uvicorn in a thread."""
    import uvicorn

    from core.student.serve import create_app

    store, job_id = run
    servers = []

    def start(cascade_threshold=None, cap_usd=None):
        student = load_student_model(Run.find(store, job_id).model_dir())
        cascade = (None if cascade_threshold is None else
                   Cascade(student, store, "tickets", cascade_threshold, cap_usd=cap_usd, concurrency=2))
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(student, cascade, run_id=job_id), host="127.0.0.1",
                                               port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"
    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_the_endpoint_refuses_a_bad_row_with_422_and_keeps_serving(endpoint):
    url = endpoint()
    status, body = _post(url, {"rows": [{"text": "my card was charged twice"}, {"subject": "no text field"},
                                        {"text": "   "}]})
    assert status == 422
    assert [r["index"] for r in body["rows"]] == [1, 2] and "text" in body["rows"][0]["error"]
    assert _post(url, None, raw=b"{not json")[0] == 400
    assert _post(url, {"row": {"text": "a"}, "rows": []})[0] == 422
    assert _post(url, {"rows": [{"text": "x"}] * 300})[0] == 413
    assert _post(url, {"row": {"text": "x"}, "rationale": "yes"})[0] == 422
    status, body = _post(url, None, raw=b'{"row": {"text": "\\ud800 lone"}}')  # the tokenizer cannot take it
    assert status == 422 and "not valid Unicode" in body["rows"][0]["error"]
    assert _post(url, None, raw=b'{"row": {"text": ' + b"[" * 100000 + b"]" * 100000 + b"}}")[0] == 400
    status, body = _post(url, {"row": {"text": "the app crashes on start"}})
    assert status == 200
    [prediction] = body["predictions"]
    assert prediction["answered_by"] == "student" and 0 <= prediction["confidence"] <= 1 and prediction["rationale"]
    assert _get(url)["status"] == "ok"


def test_the_endpoint_cascades_and_its_cap_stops_teacher_calls(endpoint, serve_teacher, run):
    server = serve_teacher(correct_responder)
    url = endpoint(cascade_threshold=1.0, cap_usd=0.0025)  # every row is under 1.0; the cap allows a few
    answered = []
    for i in range(6):
        status, body = _post(url, {"rows": [{"text": f"Parcel {i}-{j} lost in transit"} for j in range(2)],
                                   "rationale": False})
        assert status == 200
        answered += body["predictions"]
    health = _get(url)
    sent = len(_teacher_saw(server))
    assert 0 < sent < 12 and health["teacher_spent_usd"] <= 0.0025
    by = [p["answered_by"] for p in answered]
    assert by.count("teacher") == sent and by.count("student") == 12 - sent
    assert all("budget cap" in p["teacher_error"] for p in answered if p["answered_by"] == "student")
    assert health["counts"]["deferred"] == 12 and health["threshold"] == 1.0
    for p in answered:  # the teacher states no confidence; the student's, which routed the row, is kept
        assert (p["confidence"] is None) == (p["answered_by"] == "teacher") and 0 <= p["student_confidence"] <= 1
        assert p["rationale"] is None  # none asked for, the teacher's included


def test_core_serve_runs_the_endpoint_on_localhost(run, tmp_path):
    store, job_id = run
    port = _free_port()
    proc = start_cli("serve", "--run", job_id, "--port", str(port), "--db", str(store.path))
    try:
        url, deadline, health = f"http://127.0.0.1:{port}", time.time() + 90, None
        while health is None and time.time() < deadline and proc.poll() is None:
            try:
                health = _get(url)
            except OSError:
                time.sleep(0.3)
        assert health is not None, proc.stderr.read() if proc.poll() is not None else "no answer in 90 s"
        assert health["run"] == job_id and health["threshold"] is None
        status, body = _post(url, {"rows": [{"text": "refund please"}, {"text": "login fails"}]})
        assert status == 200 and len(body["predictions"]) == 2
        taken = start_cli("serve", "--run", job_id, "--port", str(port), "--db", str(store.path))
        _, err = taken.communicate(timeout=120)  # the port is taken: said, before any "serving" line
        assert taken.returncode == 2 and "Cannot listen" in err and "serving run" not in err
    finally:
        proc.terminate()
        proc.wait(30)


# ---- the command line ------------------------------------------------------------------------------------
def test_predict_file_with_cascade_marks_who_answered(run, serve_teacher, tmp_path, capsys):
    store, job_id = run
    serve_teacher(correct_responder)
    src = tmp_path / "new.csv"
    src.write_text("id,text\n1,I was billed twice\n2,the app shows an error\n3,parcel late\n")
    out = tmp_path / "pred.jsonl"
    code = cli_main(["predict", "--run", job_id, "--file", str(src), "--out", str(out), "--cascade", "1",
                     "--db", str(store.path), "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, result
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert all(r["answered_by"] == "teacher" and r["confidence"] is None and 0 <= r["student_confidence"] <= 1
               for r in rows)  # all under 1.0; the teacher states no confidence
    assert [r["label"] for r in rows] == ["billing", "technical", "shipping"]
    assert result["cascade"]["deferred"] == 3 and result["cascade"]["teacher_answered"] == 3
    code = cli_main(["predict", "--run", job_id, "--file", str(src), "--out", str(tmp_path / "p2.csv"),
                     "--cascade", "2", "--db", str(store.path), "--json"])
    assert code == 2 and "between 0 and 1" in capsys.readouterr().err
    code = cli_main(["predict", "--run", job_id, "--file", str(src), "--out", str(tmp_path / "p3.csv"),
                     "--budget", "1", "--db", str(store.path), "--json"])
    assert code == 2 and "give --cascade" in capsys.readouterr().err and not (tmp_path / "p3.csv").exists()


def test_core_savings_prints_costs_break_even_and_the_frontier(run, capsys):
    store, job_id = run
    code = cli_main(["savings", "--run", job_id, "--db", str(store.path), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["student_usd_per_1000"] > 0 and result["teacher_usd_per_1000"] > 0
    assert "rows/s" in result["throughput"]
    thresholds = [p["threshold"] for p in result["frontier"]]
    assert thresholds[0] == 0.0 and thresholds[-1] == "every row"
    assert result["frontier"][-1]["share_to_teacher"] == 1.0
    assert result["calibration"]["ece_after"] is not None and result["cascade"]
    assert result["target_accuracy"] == pytest.approx(0.98 * result["teacher_accuracy"])
    for bad, said in ((["--threshold", "-1"], "between 0 and 1"), (["--target-accuracy", "95"], "0.9 for 90%"),
                      (["--threshold", "0.5", "--target-accuracy", "0.9"], "not both")):
        assert cli_main(["savings", "--run", job_id, "--db", str(store.path), *bad]) == 2
        assert said in capsys.readouterr().err


# ---- the Results page -------------------------------------------------------------------------------------
def test_results_page_shows_calibration_and_the_cascade_and_its_threshold_follows_the_user(app_store):
    from core.label.demo import ensure_demo
    from tests.helpers import open_page

    ensure_demo(app_store)
    job_id = trained_run(app_store, "support-tickets-demo", max_steps=2, eval_limit=20)
    folder = Run.find(app_store, job_id).folder
    (folder / "calibration.json").unlink()  # as a run trained before calibration: the page offers to calibrate
    at = open_page("pages/6_Results.py", "support-tickets-demo")
    assert not at.exception, at.exception
    assert any("no confidence calibration" in c.value for c in at.caption)
    at.button(key="calibrate_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    record = json.loads((folder / "calibration.json").read_text())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Temperature"] == f"{record['temperature']:.2f}"
    assert metrics["Calibration error after"] == f"{record['ece_after']:.3f}"
    said = [_shown(m) for m in [*at.success, *at.warning]]
    assert any("threshold" in s for s in said)
    assert any("estimated: nothing billed" in _shown(c) for c in at.caption)  # the demo teacher's price, said so
    at.radio(key="cascade_how").set_value("by hand").run()
    at.slider(key="cascade_threshold").set_value(0.0).run()
    assert any("the student answers 100% of rows and the teacher 0%" in _shown(s) for s in at.success)
    at.slider(key="cascade_threshold").set_value(1.0).run()
    deferred = sum(r["confidence"] < 1.0 for r in record["rows"]) / len(record["rows"])
    assert any(f"the teacher {deferred:.0%}" in _shown(s) for s in at.success)


def _shown(element) -> str:
    """An element's text as the reader sees it (Markdown escapes removed)."""
    return element.value.replace("\\", "")


# ---- every task type, on real data ----------------------------------------------------------------------------
@pytest.mark.shared
@pytest.mark.skipif(not __import__("tests.helpers", fromlist=["SHARED"]).SHARED.exists(),
                    reason="../shared/data is absent")
def test_multiple_choice_and_numeric_runs_calibrate_and_cascade_on_real_data(store, tmp_path, serve_teacher):
    from bench.paper import import_cqa
    from core.ingest.files import ColumnMapping, import_source, open_file
    from core.label.answers import import_teacher_outputs
    from core.train.trainer import train_project
    from tests.helpers import SHARED

    import_cqa(store, train_rows=40)
    import_source(store, open_file(SHARED / "svamp" / "svamp_train.jsonl"), "svamp", "numeric",
                  ColumnMapping(input_fields=["input"], label_field="label"), template="{input}", model="claude-haiku-4-5")
    import_teacher_outputs(store, "svamp", [(None, t) for t in json.loads((SHARED / "svamp" / "llm" /
                                                                            "train_CoT_0.json").read_text())])
    for project in ("cqa", "svamp"):
        out = train_project(store, TrainConfig(project=project, student="tiny-random", label_source="teacher",
                                               max_steps=2, batch_size=4, eval_limit=12,
                                               out_dir=str(tmp_path / project)), job_id=project)
        assert out["status"] == "completed"
        record = json.loads((tmp_path / project / "calibration.json").read_text())
        assert record["answers"] == ("label set" if project == "cqa" else "open")
        assert len(record["rows"]) == 12 and all(0 <= r["confidence"] <= 1 for r in record["rows"])
        front = frontier(record["rows"], store.get_project(project).task, None, None)
        shares = [p["share_to_teacher"] for p in front["points"]]
        assert shares == sorted(shares) and shares[-1] == 1.0
        assert front["points"][-1]["accuracy"] == front["teacher_accuracy"]
    # a multiple-choice row deferred to the teacher: its choices reach the prompt, the answer is one of them
    server = serve_teacher(lambda body: "Answer: (b)\nRationale: The second option fits.")
    store.update_project("cqa", model="claude-haiku-4-5", template="{question}\n{choices}\nAnswer: (letter)")
    student = load_student_model(tmp_path / "cqa" / "model")
    row = {"question": "Where do you keep milk cold?", "choices": ["oven", "fridge", "shelf", "car", "garden"]}
    [answer] = Cascade(student, store, "cqa", threshold=1.0).answer([row], rationale=False)
    assert answer["answered_by"] == "teacher" and answer["label"] == "fridge", answer
    assert "fridge" in _teacher_saw(server)[0]


def test_core_savings_reads_as_text_without_json(run, capsys):
    store, job_id = run
    assert cli_main(["savings", "--run", job_id, "--db", str(store.path)]) == 0
    text = capsys.readouterr().out
    assert "calibration: T = " in text and "every row" in text and "100.0%" in text
    assert "{" not in text  # a table and sentences, not Python dicts
