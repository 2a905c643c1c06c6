"""The trained student: predict with it, export it (save_pretrained, model card, the Hub)."""

from __future__ import annotations

import sys

from core.cli.commands import command
from core.db import Store
from core.kernel.errors import AppError


def predict_flags(p) -> None:
    p.add_argument("--model", help="folder with the saved student (…/output/model, or an export)")
    p.add_argument("--run", help="a training run's id: its saved student (instead of --model)")
    cascade_flags(p)
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


def cascade_flags(p) -> None:
    p.add_argument("--cascade", metavar="THRESHOLD", help="send rows whose student confidence is under THRESHOLD "
                   "(0-1) to the teacher with the project's prompt, through the labeling engine (cache, rate limit, "
                   "ledger, the project's cap); 'auto': the threshold keeping 98%% of the teacher's held-out accuracy "
                   "with the fewest rows sent (a --run's calibration)")
    p.add_argument("--budget", type=float, metavar="USD", help="cap on what this command's teacher calls may "
                   "spend (kept in the ledger; the project's own cap holds too)")
    p.add_argument("--teacher-concurrency", type=int, default=8, help="teacher calls in flight at most")


def student_of(args, store: Store):
    """(model folder, run id or None) from --model or --run."""
    from core.train.run import Run

    if bool(args.model) == bool(args.run):
        raise AppError("Give the student once: --model FOLDER or --run RUN_ID.")
    if args.run:
        return Run.find(store, args.run).model_dir(), args.run
    return args.model, None


def make_cascade(args, store: Store, student, run_id: str | None, kind: str):
    """The Cascade --cascade asks for (None without it)."""
    if args.cascade is None:
        if args.budget is not None:
            raise AppError("--budget caps the cascade's teacher calls: give --cascade THRESHOLD too.")
        return None
    from core.student.cascade import Cascade, cascade_job_id

    project = store.get_job(run_id)["project"] if run_id else student.config.get("project")
    if not project:
        raise AppError("This model folder does not name its project; give --run RUN_ID to use the cascade.")
    if args.cascade == "auto":
        if not run_id:
            raise AppError("--cascade auto chooses from a run's calibration: give --run RUN_ID.")
        from core.results.cascade import cascade_report

        chosen = cascade_report(store, run_id, compute=True)["chosen"]
        if chosen is None:
            raise AppError("No threshold reaches 98% of the teacher's held-out accuracy; give a threshold.")
        threshold = min(1.0, chosen["threshold"])
        if threshold == 0:
            print("--cascade auto: the student alone reaches 98% of the teacher's held-out accuracy, so no row "
                  "goes to the teacher (threshold 0).", file=sys.stderr)
    else:
        try:
            threshold = float(args.cascade)
        except ValueError:
            raise AppError(f"--cascade takes a confidence between 0 and 1 or 'auto', not {args.cascade!r}.") from None
    return Cascade(student, store, project, threshold, cap_usd=args.budget, job_id=cascade_job_id(kind, run_id),
                   concurrency=args.teacher_concurrency)


@command("predict", "Predict labels for new inputs, or for every row of a file, with a trained student folder "
                    "(fp32 or an int8 export).", predict_flags, project=False)
def cmd_predict(args, store: Store) -> dict:
    """Texts given on the command line, or a whole file (--file F --out O) streamed in chunks."""
    from core.student.batch import predict_file
    from core.student.predict import load_student_model

    texts = list(args.text or []) + list(args.text_option or [])
    if args.budget is not None and args.cascade is None:
        raise AppError("--budget caps the cascade's teacher calls: give --cascade THRESHOLD too.")
    if bool(texts) == bool(args.file):
        raise AppError("Give texts to predict, or --file F with --out O (not both).")
    model_dir, run_id = student_of(args, store)
    if not args.file:
        if args.cascade is not None:
            raise AppError("--cascade works on rows with the project's input columns: use --file F --out O.")
        return {"predictions": load_student_model(model_dir).predict(texts, rationale=args.rationale,
                                                                     batch_size=args.batch_size)}
    if not args.out:
        raise AppError("--file needs --out (a .csv, .jsonl or .parquet file for the predictions).")
    student = model_dir
    cascade = None
    if args.cascade is not None:
        student = load_student_model(model_dir)
        cascade = make_cascade(args, store, student, run_id, "predict")
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
        return predict_file(student, args.file, args.out, rationale=args.rationale, chunk_rows=args.chunk_rows,
                            input_columns=columns, force=args.force, batch_size=args.batch_size,
                            id_column=args.id_column, keep_inputs=args.keep_inputs,
                            on_progress=on_progress if bar is not None else None, cascade=cascade)
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


def _port(text: str) -> int:
    import argparse

    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, not {text!r}")
    return int(text)


def _positive(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"give a whole number of at least 1, not {text!r}")
    return int(text)


def serve_flags(p) -> None:
    p.add_argument("--run", required=True, help="the training run whose student answers")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: localhost only)")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("--max-rows", type=_positive, default=256, help="rows per request at most")
    cascade_flags(p)


@command("serve", "Serve a run's student over HTTP: POST /predict (one row or a batch; label, rationale, "
                  "confidence and who answered), GET /health. With --cascade, rows under the threshold go to "
                  "the teacher.", serve_flags, project=False)
def cmd_serve(args, store: Store) -> dict:
    from core.student.predict import load_student_model
    from core.student.serve import create_app, serve
    from core.train.run import Run

    student = load_student_model(Run.find(store, args.run).model_dir())
    cascade = make_cascade(args, store, student, args.run, "serve")
    app = create_app(student, cascade, run_id=args.run, max_rows=args.max_rows)
    where = f"http://{args.host}:{args.port}"

    def ready() -> None:
        said = (f"cascade: rows under confidence {cascade.threshold:.2f} go to the teacher"
                + (f", at most ${args.budget:g}" if args.budget is not None else "") if cascade else "student only")
        print(f"serving run {args.run} on {where} ({said}); POST /predict, GET /health; Ctrl-C stops",
              file=sys.stderr, flush=True)

    serve(app, args.host, args.port, on_ready=ready)
    return {"run": args.run, "url": where, "stopped": True,
            **({"teacher_spent_usd": cascade.spent_usd(), **cascade.counts} if cascade else {})}
