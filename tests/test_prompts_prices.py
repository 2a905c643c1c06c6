import pytest

from core.cost import estimate_cost
from core.errors import PriceFileError, TemplateError
from core.prices import load_prices, parse_prices, save_prices
from core.prompts import build_request, preset_template, request_hash, validate_template
from core.tasks import TASKS


def test_unknown_placeholder_is_named():
    with pytest.raises(TemplateError, match=r"Unknown placeholder \{qestion\}"):
        validate_template("Q: {qestion}", ["question"], "multiple-choice")
    with pytest.raises(TemplateError, match="unbalanced"):
        validate_template("Q: {question", ["question"], "classification")
    with pytest.raises(TemplateError, match="none of the input fields"):
        validate_template("Label it: {labels}", ["text"], "classification")


@pytest.mark.parametrize("task", TASKS)
def test_each_preset_validates_and_renders(task):
    fields = ["premise", "hypothesis"] if task == "nli" else ["text"]
    template = preset_template(task, fields)
    validate_template(template, fields, task)
    item = {"inputs": {f: f"value of {f}" for f in fields}, "choices": ["x", "y"] if task == "multiple-choice" else None}
    req = build_request(template, item, ["a", "b"], "claude-haiku-4-5", 200)
    content = req["messages"][0]["content"]
    assert all(f"value of {f}" in content for f in fields)
    assert "Answer:" in content and "Rationale:" in content and "temperature" not in req


def test_request_hash_depends_on_content_only():
    a = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    b = {"messages": [{"content": "hi", "role": "user"}], "max_tokens": 5, "model": "m"}
    assert request_hash(a) == request_hash(b)
    assert request_hash(a) != request_hash({**a, "model": "other"})


def test_price_file_has_source_and_costs_are_per_million():
    prices = load_prices()
    assert prices.source.startswith("https://") and prices.date
    assert prices.cost("claude-haiku-4-5", 1_000_000, 1_000_000) == pytest.approx(6.0)
    assert prices.cost("claude-haiku-4-5-20251001", 1_000_000, 0) == pytest.approx(1.0)  # dated id -> alias
    assert prices.cost("claude-haiku-4-5", 1_000_000, 0, batch=True) == pytest.approx(0.5)
    assert prices.cost("no-such-model", 10, 10) is None  # never a silent $0


@pytest.mark.parametrize("text,message", [
    ("not toml = = 1", "not valid TOML"),
    ("[meta]\nsource='x'\n[models.a]\ninput=1\noutput=2\n", "source and a date"),
    ("[meta]\nsource='x'\ndate='d'\n[models.a]\ninput='cheap'\noutput=2\n", "models.a.input"),
    ("[meta]\nsource='x'\ndate='d'\n", "no \\[models"),
])
def test_bad_price_file_gets_a_clear_error(text, message):
    with pytest.raises(PriceFileError, match=message):
        parse_prices(text)


def test_saving_a_bad_price_file_keeps_the_good_one(tmp_path):
    path = tmp_path / "p.toml"
    good = "[meta]\nsource='s'\ndate='d'\n[models.m]\ninput=1\noutput=2\n"
    save_prices(good, path)
    with pytest.raises(PriceFileError):
        save_prices("[meta]\n", path)
    assert path.read_text() == good


def test_estimate_scales_sample_to_all_rows():
    item = {"inputs": {"text": "My card was charged twice"}, "choices": None}
    template = preset_template("classification", ["text"])
    prices = load_prices()
    est = estimate_cost([item] * 4, template, ["billing", "shipping"], "classification", "claude-haiku-4-5", 200,
                        prices, total_rows=1000)
    assert est.rows == 1000 and est.input_tokens == round(est.input_tokens_per_row * 1000)
    assert est.cost_usd == pytest.approx((est.input_tokens * 1 + est.output_tokens * 5) / 1e6)
    unknown = estimate_cost([item], template, ["billing"], "classification", "mystery", 200, prices)
    assert unknown.cost_usd is None and not unknown.price_known
