"""The input boundary, from the hostile side: names that are paths, exports aimed at the
database, signed-out visitors when login is configured, Markdown in data, Hub pushes and
model cards, secrets and tracebacks."""

import json
import subprocess
import tomllib

import pytest
from streamlit.testing.v1 import AppTest

from core.db import Store
from core.kernel.errors import AppError
from core.review.dataset_export import export_bytes, export_project
from core.kernel.names import check_project_name, inside
from tests.helpers import REPO, import_csv, start_cli

PAGES = ["app.py", "pages/1_Data.py", "pages/2_Prompt_and_budget.py", "pages/3_Label.py", "pages/4_Review.py",
         "pages/5_Train.py", "pages/6_Results.py"]
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "id",
        "client_secret": "s", "server_metadata_url": "https://accounts.example/.well-known/openid-configuration"}


# ---- names -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../../tmp/x", "a/b", "..", "x\\y", "x" * 65, "", "  ", "n\x00ul", "tab\tname",
                                  "<script>", "émoji 🎉"])
def test_hostile_project_names_are_refused(name):
    with pytest.raises(AppError):
        check_project_name(name)


def test_plain_project_names_pass():
    for name in ("tickets", "CQA train v2", "a.b_c-d", "x" * 64):
        assert check_project_name(name) == name


def test_an_import_under_a_path_name_is_refused_and_writes_nothing(store):
    with pytest.raises(AppError, match="letters, digits"):
        import_csv(store, project="../../../tmp/x")
    assert store.list_projects() == []


def test_inside_refuses_paths_that_leave_the_base(tmp_path):
    assert inside(tmp_path, "a", "b.jsonl") == (tmp_path / "a" / "b.jsonl").resolve()
    for part in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(AppError, match="would leave"):
            inside(tmp_path, part)


# ---- exports ---------------------------------------------------------------------
def _run_cli(*args):
    proc = start_cli(*args)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def test_cli_export_never_overwrites_the_database(tmp_path):
    db = tmp_path / "app.duckdb"
    store = Store(str(db))
    import_csv(store)
    store.release()
    size = db.stat().st_size
    code, out, err = _run_cli("export", "--db", str(db), "--project", "tickets", "--format", "jsonl", "--force",
                              str(db))
    assert code != 0 and "database" in (out + err)
    assert db.stat().st_size == size
    assert Store(str(db)).count_items("tickets")["total"] == 6  # the project is still there


def test_export_refuses_any_duckdb_file_and_existing_files_without_force(tickets, tmp_path):
    other = tmp_path / "other.duckdb"
    Store(str(other)).release()
    with pytest.raises(AppError, match="DuckDB database"):
        export_project(tickets, "tickets", "csv", str(other), force=True)
    mine = tmp_path / "notes.jsonl"
    mine.write_text("my notes\n")
    with pytest.raises(AppError, match="already exists.*--force"):
        export_project(tickets, "tickets", "jsonl", str(mine))
    assert mine.read_text() == "my notes\n"
    out = export_project(tickets, "tickets", "jsonl", str(mine), force=True)
    assert out["path"] == str(mine) and mine.read_text() != "my notes\n"  # replaced, as asked
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_browser_download_names_stay_inside_the_temp_folder(tickets, tmp_path):
    name, data = export_bytes(tickets, "tickets", "jsonl", str(tmp_path))
    assert name == "tickets.jsonl" and isinstance(data, bytes)
    with pytest.raises(AppError):
        export_bytes(tickets, "../escape", "jsonl", str(tmp_path))
    assert not (tmp_path.parent / "escape.jsonl").exists()


# ---- secrets and exposure --------------------------------------------------------
def test_secrets_file_is_ignored_and_tracebacks_stay_in_the_log():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".streamlit/secrets.toml"], cwd=REPO, check=False)
    assert ignored.returncode == 0
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] in ("none", False)
    assert config["server"]["maxUploadSize"] <= 200 and config["server"]["address"] == "127.0.0.1"


@pytest.mark.parametrize("path", PAGES)
def test_with_auth_configured_a_signed_out_visitor_sees_only_the_sign_in(app_store, path):
    at = AppTest.from_file(str(REPO / path), default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.text_input and not at.text_area and not at.dataframe and not at.metric and not at.selectbox
    assert not at.sidebar.selectbox  # not even the project list


def test_signed_in_reviewer_is_the_login_and_there_is_no_typed_name(app_store):
    at = AppTest.from_file(str(REPO / "pages/4_Review.py"), default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, "email": "ana@example.org", "name": "Ana"}
    at.run()
    assert not at.exception
    assert not [t for t in at.text_input if t.key == "reviewer_name"]
    assert any("ana@example.org" in c.value.replace("\u200b", "") for c in at.caption)  # shown, not a mailto link
    assert any(b.label == "Log out" for b in at.sidebar.button)


def test_history_shows_markdown_from_data_as_text(app_store):
    from core.review import rules as review

    import_csv(app_store, "id,text,label\n1,hello,billing\n2,other,shipping\n", project="md")
    hostile = "![x](http://evil.example/p.png) [click](http://evil.example) **bold**"
    review.save_review(app_store, "md", "1", "eve", "billing", hostile, verdict="correct")
    at = AppTest.from_file(str(REPO / "pages/4_Review.py"), default_timeout=60)
    at.query_params["project"] = "md"
    at.run()
    at.multiselect(key="review_filter").set_value(["all"]).run()
    at.selectbox(key="review_row").set_value("1").run()
    at.text_input(key="reviewer_name").set_value("eve").run()  # her own row: its history shows
    assert not at.exception
    assert not at.table  # st.table renders Markdown in its cells
    cells = [str(v) for df in at.dataframe for v in df.value.to_numpy().ravel()]
    assert hostile in cells


# ---- Hub pushes and model cards -------------------------------------------------
class FakeHub:
    repos: dict = {}

    def __init__(self, token=None):
        self.token = token

    def repo_info(self, repo_id):
        from huggingface_hub.errors import RepositoryNotFoundError

        if repo_id not in self.repos:
            response = type("Response", (), {"headers": {}, "status_code": 404, "request": None})()
            raise RepositoryNotFoundError(f"{repo_id} not found", response=response)
        return type("Info", (), {"private": self.repos[repo_id]["private"]})()

    def create_repo(self, repo_id, private=False, **kw):
        self.repos[repo_id] = {"private": private, "files": []}

    def upload_folder(self, folder_path, repo_id, **kw):
        from pathlib import Path

        self.repos[repo_id]["files"] = sorted(p.name for p in Path(folder_path).iterdir())


def test_hub_pushes_are_private_by_default_and_never_into_a_public_repo_by_accident(tmp_path, monkeypatch):
    import huggingface_hub

    from core.results.model_export import push_folder

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    FakeHub.repos = {"me/public-one": {"private": False, "files": []}}
    (tmp_path / "config.json").write_text("{}")
    push_folder(tmp_path, "me/new", "token")
    assert FakeHub.repos["me/new"] == {"private": True, "files": ["config.json"]}
    with pytest.raises(AppError, match="is public"):
        push_folder(tmp_path, "me/public-one", "token")
    assert FakeHub.repos["me/public-one"]["files"] == []
    push_folder(tmp_path, "me/public-one", "token", public=True)
    assert FakeHub.repos["me/public-one"]["files"] == ["config.json"]


def test_model_card_keeps_local_paths_out(tmp_path):
    from core.results.reports import model_card

    project = type("P", (), {"task": "classification"})()
    facts = {"job": {"id": "r1", "status": "completed", "project": "t", "finished_at": None},
             "project": project, "metrics": {}, "confusion": None, "summary": {"teacher_usd": 0},
             "provenance": {"calls": [], "rows": 0, "source": "live", "answer_cost_usd": 0.0},
             "config": {"student": str(tmp_path / "models" / "minilm"), "objective": "multitask",
                        "label_source": "reviewed", "alpha": 0.5, "rationale_fraction": 1.0,
                        "out_dir": "/home/someone/work/run1", "hub": "google/flan-t5-small"}}
    card = model_card(facts)
    assert str(tmp_path) not in card and "/home/someone" not in card
    assert "<local>/minilm" in card and "google/flan-t5-small" in card
    json.dumps(card)


@pytest.mark.parametrize("value", ["0", "0.0", "-1", "inf", "nan", "true", '"3"'])
def test_a_price_that_would_disable_the_budget_cap_is_refused(tmp_path, value):
    from core.kernel.errors import PriceFileError
    from core.kernel.prices import prices_path, save_prices

    original = prices_path().read_text()
    text = original.replace('[models.claude-haiku-4-5]\ninput = 1.0', f'[models.claude-haiku-4-5]\ninput = {value}')
    assert text != original
    with pytest.raises(PriceFileError, match="positive number"):
        save_prices(text, tmp_path / "prices.toml")
    assert not (tmp_path / "prices.toml").exists()


class _RunsCode:
    def __reduce__(self):
        return (open, ("/tmp/distill-pwned-by-checkpoint", "w"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    import os

    import torch

    from core.train.checkpoint import load_checkpoint

    marker = "/tmp/distill-pwned-by-checkpoint"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "checkpoint.pt"
    torch.save({"step": 3, "payload": _RunsCode()}, path)
    with pytest.raises(AppError, match="was not loaded"):
        load_checkpoint(path)
    assert not os.path.exists(marker)
    torch.save({"step": 3, "model": {"w": torch.zeros(2)}}, path)
    assert load_checkpoint(path)["step"] == 3


def test_export_has_a_column_per_input_field_and_says_what_it_left_out(store, tmp_path):
    import pandas as pd

    from core.label.answers import import_teacher_outputs

    import_csv(store, "id,subject,body,label\n1,Refund,Charged twice,billing\n2,Late,Where is it,shipping\n"
                      "3,Crash,App dies,technical\n", project="mail", input_fields=["subject", "body"])
    import_teacher_outputs(store, "mail", [("1", "Answer: billing\nRationale: a charge."),
                                           ("2", "No idea at all.")])
    out = export_project(store, "mail", "csv", str(tmp_path / "mail.csv"))
    frame = pd.read_csv(tmp_path / "mail.csv")
    assert out["rows"] == len(frame) == 1
    assert list(frame.columns[:3]) == ["row_id", "subject", "body"] and "inputs" not in frame.columns
    assert (frame.loc[0, "subject"], frame.loc[0, "body"]) == ("Refund", "Charged twice")
    assert {(x["status"], x["rows"]) for x in out["left_out"]} == {("flagged", 1), ("unlabeled", 1)}
    assert all(x["why"] for x in out["left_out"])


def test_plain_text_never_becomes_a_live_link():
    from ui import plain

    shown = plain("Sign in again at https://evil.example.com/login, www.evil.example.com or help@evil.example.com")
    assert "https://" not in shown and "www." not in shown and "p@e" not in shown  # no autolink can start
    assert shown.replace("\u200b", "").replace("\\", "") == (
        "Sign in again at https://evil.example.com/login, www.evil.example.com or help@evil.example.com")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "hf"])
def test_export_streams_every_format_with_awkward_field_names_and_choices(store, tmp_path, fmt):
    import json

    import pandas as pd

    from core.label.answers import import_teacher_outputs

    text = ('id,"we""ird",$x,gold,question,options,label\n'
            '1,"quote "" here",dollar,g1,Which one?,"[""red"", ""blue""]",blue\n'
            '2,plain,"é, ü",g2,And now?,"[""cat"", ""dog""]",cat\n')
    import_csv(store, text, project="mc", task="multiple-choice", input_fields=['we"ird', "$x", "gold", "question"],
               choices_field="options")
    import_teacher_outputs(store, "mc", [("1", "Answer: blue\nRationale: r1"), ("2", "Answer: cat\nRationale: r2")])
    out = export_project(store, "mc", fmt, str(tmp_path / f"mc.{fmt}"))
    path = tmp_path / f"mc.{fmt}"
    if fmt == "jsonl":
        frame = pd.DataFrame([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])
    elif fmt == "csv":
        frame = pd.read_csv(path)
        frame["choices"] = frame["choices"].map(json.loads)
    elif fmt == "parquet":
        frame = pd.read_parquet(path)
    else:
        from datasets import load_from_disk

        frame = load_from_disk(str(path)).to_pandas()
    assert out["rows"] == len(frame) == 2 and list(frame.columns) == out["columns"]
    assert list(frame.columns[:5]) == ["row_id", 'we"ird', "$x", "input_gold", "question"]
    first, second = frame.iloc[0], frame.iloc[1]
    assert (first['we"ird'], first["$x"], first["input_gold"]) == ('quote " here', "dollar", "g1")
    assert (second["$x"], second["label"], second["rationale"]) == ("é, ü", "cat", "r2")
    assert list(first["choices"]) == ["red", "blue"] and first["gold"] == "blue"
