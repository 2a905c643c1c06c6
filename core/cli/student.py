"""The trained student: predict with it, export it (save_pretrained, model card, the Hub)."""

from __future__ import annotations

import sys

from core.cli.commands import command
from core.db import Store
from core.kernel.errors import AppError


def predict_flags(p) -> None:
    p.add_argument("--model", required=True, help="folder with the saved student (…/output/model, or an export)")
    p.add_argument("--rationale", action="store_true", help="also generate the student's rationale")
    p.add_argument("text", nargs="*", help="input texts (as the student sees them)")
    p.add_argument("--text", dest="text_option", action="append", metavar="TEXT", help="an input text (repeatable)")
    p.add_argument("--file", help="CSV, TSV, JSON Lines or Parquet file with the project's input columns "
                   "(and choices for multiple-choice); read in chunks")
    p.add_argument("--out", help="predictions file: .csv, .jsonl or .parquet (the id column when the file has "
                   "row_id or id, label, rationale)")
    p.add_argument("--id-column", help="the file's id column, carried into --out under its own name (default: "
                   "the project's id column when the file has it, else row_id or id)")
    p.add_argument("--keep-inputs", action="store_true", help="also write the input columns beside the predictions")
    p.add_argument("--input-columns", help="comma-separated input columns, for a model folder that does not name them")
    p.add_argument("--chunk-rows", type=int, default=256, help="rows read, predicted and written at a time")
    p.add_argument("--batch-size", type=int, default=16, help="rows per generation batch")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")


@command("predict", "Predict labels for new inputs, or for every row of a file, with a trained student folder "
                    "(fp32 or an int8 export).", predict_flags, project=False)
def cmd_predict(args, store: Store) -> dict:
    """Texts given on the command line, or a whole file (--file F --out O) streamed in chunks."""
    from core.student.batch import predict_file
    from core.student.predict import load_student_model

    texts = list(args.text or []) + list(args.text_option or [])
    if bool(texts) == bool(args.file):
        raise AppError("Give texts to predict, or --file F with --out O (not both).")
    if not args.file:
        return {"predictions": load_student_model(args.model).predict(texts, rationale=args.rationale,
                                                                      batch_size=args.batch_size)}
    if not args.out:
        raise AppError("--file needs --out (a .csv, .jsonl or .parquet file for the predictions).")
    columns = [c.strip() for c in args.input_columns.split(",") if c.strip()] if args.input_columns else None
    bar = None
    if not args.json and sys.stderr.isatty() or args.progress:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="row", file=sys.stderr)

    def on_progress(done: int, total: int | None) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        return predict_file(args.model, args.file, args.out, rationale=args.rationale, chunk_rows=args.chunk_rows,
                            input_columns=columns, force=args.force, batch_size=args.batch_size,
                            id_column=args.id_column, keep_inputs=args.keep_inputs,
                            on_progress=on_progress if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()


def export_model_flags(p) -> None:
    p.add_argument("--run", required=True)
    p.add_argument("--push-to", help="Hugging Face Hub repo id; needs HF_TOKEN and network")
    p.add_argument("--public", action="store_true", help="push to a public repo (default: private only)")
    p.add_argument("--quantize", choices=["int8"], help="int8: a dynamically quantized student for CPU serving "
                   "(its card gives size, speed and agreement against fp32 on the run's held-out rows)")
    p.add_argument("out", nargs="?", help="the export folder (or --out)")
    p.add_argument("--out", dest="out_option", metavar="OUT", help="the export folder")


@command("export-model", "Save a run's student (save_pretrained + tokenizer + model card).", export_model_flags,
         project=False)
def cmd_export_model(args, store: Store) -> dict:
    from core.results.model_export import export_model

    outs = [x for x in (args.out, args.out_option) if x]
    if len(outs) != 1:
        raise AppError("Give the export folder once: OUT or --out OUT.")
    return export_model(store, args.run, outs[0], push_to=args.push_to, public=args.public, quantize=args.quantize)
