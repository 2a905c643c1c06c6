import pytest

from core.db import Store
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import correct_responder, import_csv, many_tickets


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


@pytest.fixture
def app_store():
    """The database the app's pages open (DISTILL_DB), with a fresh cached Store per test."""
    import os

    import streamlit as st

    from tests.helpers import REPO

    st.cache_resource.clear()
    st.cache_data.clear()
    os.chdir(REPO)
    yield Store(os.environ["DISTILL_DB"])
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def fake():
    server = FakeAnthropic(responder=correct_responder).start()
    yield server
    server.stop()


@pytest.fixture
def serve_teacher(monkeypatch):
    """serve_teacher(responder): a fake server answering with `responder`, and ANTHROPIC_API_KEY /
    ANTHROPIC_BASE_URL pointing at it for this test; stopped after."""
    servers = []

    def start(responder):
        server = FakeAnthropic(responder=responder).start()
        servers.append(server)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        return server
    yield start
    for server in servers:
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


@pytest.fixture
def slow_fake():
    """A fake teacher that takes 0.2 s per answer: long enough to act on a job mid-run."""
    server = FakeAnthropic(responder=correct_responder, latency_s=0.2).start()
    yield server
    server.stop()


@pytest.fixture
def big(tmp_path) -> Store:
    """200 tickets in a database of their own (the CLI's, in the lifecycle tests)."""
    store = Store(tmp_path / "cli.duckdb")
    many_tickets(store, 200)
    return store


@pytest.fixture
def labeled(tickets, fake) -> Store:
    """The six tickets, answered by the fake teacher."""
    from core.label.teacher import label_project

    label_project(tickets, "tickets", api_key="k", base_url=fake.url)
    return tickets
