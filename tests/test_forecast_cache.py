"""The pages keep a forecast while its fingerprint holds: the fingerprint must move whenever
anything the forecast depends on moves, and only then."""

from core.db import TeacherWrites
from core.prompt.forecast import forecast_fingerprint
from core.kernel.prices import DEFAULT_PRICES, PRICES_ENV


def test_the_fingerprint_moves_with_everything_a_forecast_reads(tickets, tmp_path, monkeypatch):
    first = forecast_fingerprint(tickets, "tickets")
    assert forecast_fingerprint(tickets, "tickets") == first  # nothing changed: keep the forecast
    tickets.write_teacher("tickets", TeacherWrites(results=[{
        "row_id": "1", "status": "labeled", "label": "billing", "rationale": "r", "flag": None,
        "request_hash": None, "source": "teacher", "confidence": None}]))
    answered = forecast_fingerprint(tickets, "tickets")
    assert answered != first  # a row answered: one request fewer
    tickets.update_project("tickets", template=tickets.get_project("tickets").template + "\nBe brief.")
    reworded = forecast_fingerprint(tickets, "tickets")
    assert reworded != answered  # another prompt: other requests
    prices = tmp_path / "prices.toml"
    prices.write_text(DEFAULT_PRICES.read_text())
    monkeypatch.setenv(PRICES_ENV, str(prices))
    assert forecast_fingerprint(tickets, "tickets") != reworded  # another price file
