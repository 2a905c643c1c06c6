from pathlib import Path

import pytest

from core.ingest import ColumnMapping, build_items, read_records
from core.prompts import preset_template
from core.store import Store
from tests.fake_anthropic import FakeAnthropic

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"

TICKETS_CSV = (
    "id,text,label\n"
    "1,My card was charged twice for one order,billing\n"
    "2,The app crashes when I open settings,technical\n"
    "3,Where is my parcel? Tracking has not moved,shipping\n"
    "4,I was billed after cancelling,billing\n"
    "5,Login page shows error 500,technical\n"
    "6,The courier lost my package,shipping\n"
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees a real key, the hub, or the developer's database."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("DISTILL_DB", str(tmp_path / "app.duckdb"))


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "test.duckdb")


def import_csv(store: Store, text: str = TICKETS_CSV, project: str = "tickets", task: str = "classification",
               **mapping) -> int:
    mapping = {"input_fields": ["text"], "id_field": "id", "label_field": "label", **mapping}
    frame, labels = build_items(read_records(text.encode(), "data.csv"), task, ColumnMapping(**mapping))
    return store.import_items(project, task, mapping["input_fields"], labels, frame,
                              preset_template(task, mapping["input_fields"]), "claude-haiku-4-5")


TICKET_WORDS = ["charged twice", "app crash", "parcel lost", "billed after cancel", "error 500", "courier late"]


def many_tickets(store, n: int, project: str = "tickets") -> None:
    lines = ["id,text,label"] + [f"{i},Ticket {i}: {TICKET_WORDS[i % 6]},{['billing', 'technical', 'shipping'][i % 6 % 3]}"
                                 for i in range(n)]
    import_csv(store, "\n".join(lines) + "\n", project=project)


def correct_responder(body: dict) -> str:
    """Answers like a good teacher for TICKETS_CSV."""
    text = body["messages"][-1]["content"].lower()
    label = ("billing" if ("charged" in text or "billed" in text) else
             "technical" if ("crash" in text or "error" in text) else "shipping")
    return f"Answer: {label}\nRationale: The ticket mentions {label} problems."


@pytest.fixture
def fake():
    server = FakeAnthropic(responder=correct_responder).start()
    yield server
    server.stop()


@pytest.fixture
def tickets(store) -> Store:
    import_csv(store)
    return store


@pytest.fixture(scope="module")
def fake_module():
    """One fake server for a module whose fixtures are module-scoped (trained runs)."""
    server = FakeAnthropic(responder=correct_responder).start()
    yield server
    server.stop()
