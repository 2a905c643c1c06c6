"""`core prompt`: everything the Prompt page sets, from the command line."""

import json

from tests.helpers import import_csv, start_cli


def prompt(db, *args):
    proc = start_cli("prompt", "--db", db, "--project", "tickets", *args)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, (json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 else out + err)


def test_prompt_command_saves_versions_and_refuses_bad_templates(store, tmp_path):
    import_csv(store)
    store.release()
    code, first = prompt(store.path)
    assert code == 0 and first["template_version"] == 1 and first["mode"] == "zero-shot"
    template = tmp_path / "t.txt"
    template.write_text("Ticket: {text}\nWhich team ({labels})?\nAnswer: <team>\nRationale: <why>")
    code, second = prompt(store.path, "--template-file", str(template), "--output-format", "json",
                          "--model", "claude-sonnet-4-5", "--max-tokens", "120")
    assert code == 0 and second["template_version"] == 2
    assert (second["output_format"], second["model"], second["max_tokens"]) == ("json", "claude-sonnet-4-5", 120)
    code, few = prompt(store.path, "--mode", "few-shot", "--shots", "3")
    assert code == 0 and few["template_version"] == 3 and "{examples}" in few["template"] and few["shots"] == 3
    template.write_text("Ticket: {txt}")
    code, message = prompt(store.path, "--mode", "zero-shot", "--template-file", str(template))
    assert code != 0 and "Unknown placeholder {txt}" in message
    code, message = prompt(store.path, "--label-words", "yes=praise")
    assert code != 0 and "praise" in message
    code, same = prompt(store.path)
    assert code == 0 and same["template_version"] == 3  # nothing changed, no new version


def test_try_prices_first_then_compares_two_versions_on_the_same_rows(store, fake, tmp_path):
    from tests.helpers import many_tickets

    many_tickets(store, 60)
    store.release()
    env = {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": fake.url}

    def run(*args):
        proc = start_cli("try", "--db", store.path, "--project", "tickets", *args, env=env)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        return json.loads(out.strip().splitlines()[-1])

    quote = run("--rows", "10", "--quote")
    assert quote["requests"] == 10 and quote["forecast"]["cost_usd_p50"] > 0 and not fake.requests
    first = run("--rows", "10")
    assert first["rows"] == 10 and first["parse_rate"] == 1.0 and first["accuracy"] == 1.0
    template = tmp_path / "t.txt"
    template.write_text("Ticket: {text}\nTeam ({labels})?\nAnswer: <team>\nRationale: <why>")
    code, _ = prompt(store.path, "--template-file", str(template))
    assert code == 0
    second = run("--rows", "10")
    assert second["template_version"] == first["template_version"] + 1
    assert run("--rows", "10", "--quote")["row_ids"] == quote["row_ids"]  # the same rows, so versions compare
    again = run("--rows", "10")
    assert again["cost_usd"] == 0 and again["cache_hits"] == 10  # unchanged prompt: answered by the cache


def test_a_template_files_trailing_newline_is_the_same_template(store, tmp_path):
    """Editors end a file with a newline: saving it again is no new version, and its requests
    are the ones already cached."""
    from tests.helpers import import_csv

    import_csv(store)
    store.update_project("tickets", template="Which team? {text}\nAnswer: <team>")
    version = store.template_version("tickets")
    store.update_project("tickets", template="Which team? {text}\r\nAnswer: <team>\n\n")
    assert store.template_version("tickets") == version
    assert store.get_project("tickets").template == "Which team? {text}\nAnswer: <team>"
