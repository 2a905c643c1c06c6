"""Stored teacher answers: answers obtained elsewhere (another model, an earlier run, a paper's
released outputs) read from files and stored like live responses at no cost, and every stored
answer read again when the parsing rules of a project change (its label words)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from core.label import parsing
from core.db import Store, TeacherWrites
from core.kernel.errors import DataImportError
from core.label.parsing import ParseResult, labels_equal, parse_response
from core.kernel.hashing import request_hash

MAX_FILE_BYTES = 200 * 1024 * 1024   # the app's upload limit
MAX_ANSWER_CHARS = 100_000           # one answer; longer is not a teacher's label and rationale


def read_completions(paths: list[str], id_field: str, response_field: str) -> list[tuple[str | None, str]]:
    """(row id or None, text) from each file: a JSON list of strings (aligned by row order),
    a JSON array of objects, or JSON Lines objects carrying `id_field` and `response_field`."""
    completions: list[tuple[str | None, str]] = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise DataImportError(f"No such file: {path}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DataImportError(f"{path} is {path.stat().st_size / 2**20:.0f} MB; the limit is "
                                  f"{MAX_FILE_BYTES // 2**20} MB.")
        for where, value in _values(path):
            completions.append(_completion(path, where, value, id_field, response_field))
    return completions


def _values(path: Path) -> Iterator[tuple[str, object]]:
    """(where, JSON value) for each record: array elements, or one per non-empty line."""
    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.read(1)
            while first.isspace():
                first = fh.read(1)
            fh.seek(0)
            if first == "[":
                try:
                    values = json.load(fh)
                except json.JSONDecodeError as exc:
                    raise DataImportError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno}).") from exc
                yield from ((f"record {n}", v) for n, v in enumerate(values, start=1))
                return
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"line {lineno}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataImportError(f"{path} line {lineno}: invalid JSON ({exc.msg}).") from exc
    except UnicodeDecodeError as exc:
        raise DataImportError(f"{path}: the file is not valid UTF-8 ({exc.reason}).") from exc


def _completion(path: Path, where: str, value: object, id_field: str, response_field: str) -> tuple[str | None, str]:
    if isinstance(value, str):
        rid, text = None, value
    elif isinstance(value, dict) and id_field in value and isinstance(value.get(response_field), str):
        rid, text = str(value[id_field]), value[response_field]
    else:
        raise DataImportError(f"{path} {where}: expected a string, or an object with {id_field!r} and a text "
                              f"{response_field!r}.")
    if len(text) > MAX_ANSWER_CHARS:
        raise DataImportError(f"{path} {where}: the answer has {len(text):,} characters; the limit is "
                              f"{MAX_ANSWER_CHARS:,}.")
    return rid, text


def import_teacher_outputs(
    store: Store, project: str, completions: list[tuple[str | None, str]], split: str | None = None,
    label_words: dict[str, str] | None = None,
) -> dict:
    """Store completions obtained elsewhere and parse them like live responses.

    `completions` are (row_id or None, text); None ids are aligned with the project's
    rows in import order (optionally within `split`)."""
    proj = store.get_project(project)
    words = parsing.check_label_words(label_words, proj.task, proj.label_set) if label_words else proj.label_words
    items = store.items_by_order(project, split)
    by_id = {it["row_id"]: it for it in items}
    pairs = []
    if all(rid is None for rid, _ in completions):
        if len(completions) > len(items):
            raise DataImportError(
                f"{len(completions)} completions but only {len(items)} rows"
                + (f" in split {split!r}" if split else "") + "; they cannot be aligned."
            )
        pairs = list(zip(items, (text for _, text in completions)))
    else:
        for n, (rid, text) in enumerate(completions, start=1):
            if rid not in by_id:
                raise DataImportError(f"record {n}: id {rid!r} is not in project {project!r}.")
            pairs.append((by_id[rid], text))
    parsed_n = flagged = right = with_gold = 0
    writes = TeacherWrites()
    for item, text in pairs:
        response = {"type": "message", "role": "assistant", "model": "imported",
                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}
        key = request_hash({"imported": True, "project": project, "row_id": item["row_id"], "text": text})
        writes.cache.append({"request_hash": key, "model": "imported",
                             "request": json.dumps({"imported": True, "row_id": item["row_id"]}),
                             "response": json.dumps(response), "input_tokens": None, "output_tokens": None,
                             "cost_usd": None, "source": "imported"})
        writes.calls.append({"row_id": item["row_id"], "job_id": None, "request_hash": key, "template_hash": None,
                             "model": "imported", "cached": True, "billed_usd": 0.0, "input_tokens": None,
                             "output_tokens": None, "error_type": None, "error_message": None, "attempts": None})
        parsed = parse_response(text, proj.task, item.get("choices"), proj.label_set, label_words=words)
        writes.results.append({"row_id": item["row_id"], "status": "labeled" if parsed.ok else "flagged",
                               "label": parsed.label, "rationale": parsed.rationale, "flag": parsed.flag,
                               "request_hash": key, "source": "imported", "confidence": parsed.confidence})
        parsed_n += parsed.ok
        flagged += not parsed.ok
        if item.get("gold") is not None:
            with_gold += 1
            right += labels_equal(parsed.label, item["gold"], proj.task)
    store.write_teacher(project, writes)
    from core.label.rationale_flags import refresh_quietly

    checks = refresh_quietly(store, project)
    return {
        "rationale_checks": checks, "rows": len(pairs), "parsed": parsed_n, "flagged": flagged,
        "teacher_accuracy": round(right / with_gold, 4) if with_gold else None,
    }


def reparse_answers(store: Store, project: str) -> dict:
    """Read every stored teacher answer again with the project's current parsing (its label
    words, say) and write the rows whose outcome changed. No request is sent, nothing is
    billed; a reviewed row keeps its reviewer's label (write_teacher's rule)."""
    from core.label.calls import response_text

    proj = store.get_project(project)
    items = [it for it in store.items_by_order(project, None)
             if it["request_hash"] and it["status"] in ("labeled", "flagged")]
    cached = store.cached_responses([it["request_hash"] for it in items])
    rereads = store.rereads(project)
    writes = TeacherWrites()
    before_ok = after_ok = 0
    for item in items:
        hit = cached.get(item["request_hash"])
        if hit is None:
            continue
        response = hit["response"]
        parsed = parse_response(response_text(response), proj.task, item.get("choices"), proj.label_set, response.get("stop_reason"),
                                label_words=proj.label_words)
        source = "imported" if hit["source"] == "imported" else "teacher"
        reread = rereads.get(item["row_id"])
        if not parsed.ok and reread and reread["answer_hash"] == item["request_hash"] and reread["label"]:
            parsed, source = ParseResult(reread["label"], parsed.rationale), "reread"  # a second model read this answer
        before_ok += item["status"] == "labeled"
        after_ok += parsed.ok
        if (parsed.label, parsed.flag, parsed.rationale) == (item["teacher_label"], item["flag"],
                                                           item["teacher_rationale"]):
            continue
        writes.results.append({"row_id": item["row_id"], "status": "labeled" if parsed.ok else "flagged",
                               "label": parsed.label, "rationale": parsed.rationale, "flag": parsed.flag,
                               "request_hash": item["request_hash"], "source": source,
                               "confidence": parsed.confidence})
    store.write_teacher(project, writes)
    from core.label.rationale_flags import refresh_quietly

    refresh_quietly(store, project)
    return {"answers": len(items), "changed": len(writes.results), "parsed_before": before_ok,
            "parsed_after": after_ok}


def label_words_from(project, spec: str) -> dict[str, str] | None:
    """The label words a spec like "true=entailment, false=contradiction" gives `project`
    (None when empty); a DataImportError names what is wrong."""
    return parsing.check_label_words(parsing.parse_label_words(spec), project.task, project.label_set) if spec.strip() else None


def format_label_words(words: dict[str, str] | None) -> str:
    return ", ".join(f"{w}={label}" for w, label in (words or {}).items())


def save_label_words(store: Store, project: str, spec: str) -> dict:
    """Set the project's label words (an empty spec clears them), then re-read the stored
    answers with them. Nothing is saved when the spec is bad."""
    words = label_words_from(store.get_project(project), spec)
    store.update_project(project, label_words=words)
    return {"project": project, "label_words": words, **reparse_answers(store, project)}
