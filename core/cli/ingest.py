"""Getting data in: import a file or a Hugging Face dataset, or create the demo project."""

from __future__ import annotations

from pathlib import Path

from core.cli.commands import command
from core.db import Store
from core.kernel.errors import AppError
from core.kernel.tasks import TASKS


def import_flags(p) -> None:
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--id-field")
    p.add_argument("--input-fields", help="comma-separated input columns")
    p.add_argument("--label-field", help="gold label column (optional)")
    p.add_argument("--choices-field", help="column with the list of choices (multiple-choice)")
    p.add_argument("--split-field", help="column naming each row's split")
    p.add_argument("--split", help="split for rows without a split column (default train); with --hf, also "
                   "the dataset split to import")
    p.add_argument("--labels", help="comma-separated label set (classification)")
    p.add_argument("--model", default="claude-haiku-4-5", help="teacher model for the project")
    p.add_argument("file", nargs="?", help="the data file (or --file)")
    p.add_argument("--file", dest="file_option", metavar="FILE", help="the data file")
    p.add_argument("--hf", metavar="ID_OR_PATH", help="a Hugging Face dataset: a save_to_disk folder or a Hub id")
    p.add_argument("--hf-split", help="the dataset's split to import, when it differs from --split")


@command("import", "Import a CSV, TSV, JSON Lines, JSON array or Parquet file, or a Hugging Face dataset, "
                   "into a project (one transaction).", import_flags)
def cmd_import(args, store: Store) -> dict:
    from core.ingest.files import ColumnMapping, import_source, open_file, open_hf
    from core.kernel.names import check_project_name

    mapping = ColumnMapping(
        input_fields=[f.strip() for f in args.input_fields.split(",") if f.strip()] if args.input_fields else [],
        id_field=args.id_field, label_field=args.label_field, choices_field=args.choices_field,
        split_field=args.split_field, labels=args.labels.split(",") if args.labels else None,
    )
    if not mapping.input_fields:
        raise AppError("--input-fields is required (comma-separated column names).")
    given = [x for x in (args.file, args.file_option, args.hf) if x]
    if len(given) != 1:
        raise AppError("Give exactly one source: a file (FILE or --file) or --hf DATASET.")
    file = args.file or args.file_option
    check_project_name(args.project)  # refuse a bad name before reading anything
    if args.hf:  # --split names the dataset's split too (the rows then carry its name)
        source = open_hf(args.hf, args.hf_split or args.split)
    else:
        if not Path(file).exists():
            raise AppError(f"No such file: {file}")
        source = open_file(file)
    n, labels = import_source(store, source, args.project, args.task, mapping, model=args.model,
                              default_split=args.split or args.hf_split or "train")
    return {"project": args.project.strip(), "rows": n, "task": args.task, "labels": labels}


@command("demo", "Create the bundled demo project (idempotent).", project=False)
def cmd_demo(args, store: Store) -> dict:
    from core.label.demo import ensure_demo

    name = ensure_demo(store)
    return {"project": name, **store.count_items(name)}
