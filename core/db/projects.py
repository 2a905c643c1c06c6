"""Projects and their prompt-template history. Owns the tables `projects` and `prompt_templates`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.kernel.errors import NotFound
from core.kernel.hashing import template_hash, template_text


@dataclass
class Project:
    name: str
    task: str
    input_fields: list[str]
    label_set: list[str] | None
    template: str | None
    model: str | None
    max_tokens: int
    demo_teacher: bool
    mode: str = "zero-shot"
    output_format: str = "text"
    shots: int = 6
    demo_rows: list[str] | None = None
    budget_usd: float | None = None
    label_words: dict[str, str] | None = None  # the prompt's answer words -> labels (a verbalizer)
    id_field: str | None = None  # the column the rows were imported with as their id


class ProjectTables:
    def list_projects(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM projects ORDER BY created_at, name")]

    def mark_opened(self, name: str) -> None:
        """Record that the app showed this project now (core.db: the last one opened is the default)."""
        with self.transaction() as con:
            con.execute("UPDATE projects SET opened_at = current_timestamp WHERE name = ?", [name])

    def last_opened_project(self) -> str | None:
        """The project the app showed last in this workspace; None before any was shown."""
        rows = self.query("SELECT name FROM projects WHERE opened_at IS NOT NULL ORDER BY opened_at DESC LIMIT 1")
        return rows[0]["name"] if rows else None

    def get_project(self, name: str) -> Project:
        rows = self.query("SELECT * FROM projects WHERE name = ?", [name])
        if not rows:
            raise NotFound(f"No project named {name!r}. Import data first.")
        r = rows[0]
        return Project(
            name=r["name"],
            task=r["task"],
            input_fields=json.loads(r["input_fields"]),
            label_set=json.loads(r["label_set"]) if r["label_set"] else None,
            template=r["template"],
            model=r["model"],
            max_tokens=r["max_tokens"] or 200,
            demo_teacher=bool(r["demo_teacher"]),
            mode=r["mode"] or "zero-shot",
            output_format=r["output_format"] or "text",
            shots=r["shots"] if r["shots"] is not None else 6,
            demo_rows=json.loads(r["demo_rows"]) if r["demo_rows"] else None,
            budget_usd=r["budget_usd"],
            label_words=json.loads(r["label_words"]) if r["label_words"] else None,
            id_field=r.get("id_field"),
        )

    def update_project(self, name: str, **fields: Any) -> None:
        allowed = {"template", "model", "max_tokens", "label_set", "demo_teacher", "mode", "output_format", "shots",
                   "demo_rows", "budget_usd", "label_words", "id_field"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        if "template" in fields:
            fields["template"] = template_text(fields["template"])
        for key in ("label_set", "demo_rows", "label_words"):
            if key in fields:  # empty means none
                fields[key] = json.dumps(fields[key]) if fields[key] else None
        with self.transaction() as con:
            for key, value in fields.items():
                # key is from the fixed allow-list above, never from user input
                con.execute(f"UPDATE projects SET {key} = ? WHERE name = ?", [value, name])
            if fields.keys() & {"template", "mode", "output_format"}:
                self._version_template(con, name)

    def _version_template(self, con, name: str) -> int:
        """Record the project's current template as a new version when it changed."""
        template, mode, fmt = con.execute(
            "SELECT template, mode, output_format FROM projects WHERE name = ?", [name]).fetchone()
        if not template:
            return 0
        key = template_hash(f"{mode}|{fmt}|{template}")
        last = con.execute("SELECT version, template_hash FROM prompt_templates WHERE project = ? "
                           "ORDER BY version DESC LIMIT 1", [name]).fetchone()
        if last and last[1] == key:
            return last[0]
        version = (last[0] if last else 0) + 1
        con.execute("INSERT INTO prompt_templates(project, version, template, mode, output_format, template_hash) "
                    "VALUES (?,?,?,?,?,?)", [name, version, template, mode or "zero-shot", fmt or "text", key])
        return version

    def template_version(self, name: str) -> int:
        with self.transaction() as con:
            return self._version_template(con, name)

    def template_versions(self, name: str) -> list[dict]:
        return self.query("SELECT * FROM prompt_templates WHERE project = ? ORDER BY version DESC", [name])
