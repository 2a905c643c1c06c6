"""The student behind an HTTP endpoint (Starlette, served by uvicorn), on localhost by default.

    POST /predict   {"row": {...}} or {"rows": [{...}, ...]}, optional "rationale": false
                    -> {"predictions": [{"label", "confidence", "probabilities", "answered_by",
                        "rationale", "deferred", "teacher_error", "student_label",
                        "student_confidence"}], "threshold": ...}
    GET  /health    -> {"status": "ok", "run", "task", "input_fields", "threshold", "cap_usd",
                        "teacher_spent_usd", "counts"}

A request whose rows are not all valid is refused whole with 422 and each bad row's index and
reason (nothing is predicted, nothing is billed); malformed JSON is 400, too many rows or too
large a body 413. The server keeps serving after any of them.

Rows from concurrent requests are predicted together: one worker thread owns the model and
takes every row waiting (up to `max_batch` rows) at each pass, so 20 clients cost about one
forward pass per wave, not 20. Rows under the cascade's threshold go to the teacher from the
request's own thread (core.student.cascade), concurrently with the model's next pass.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

from core.kernel.errors import AppError
from core.student.cascade import Cascade, student_answer
from core.student.predict import Student

MAX_ROWS = 256                  # rows per request
MAX_BODY = 4 * 1024 * 1024      # bytes per request


class ModelWorker:
    """Runs student passes one at a time, batching the rows of every request waiting."""

    def __init__(self, max_batch: int = 64):
        self.max_batch = max_batch
        self.queue: asyncio.Queue | None = None
        self.lock = threading.Lock()  # the model is used by one pass at a time
        self.task: asyncio.Task | None = None

    async def run(self, fn, items: list):
        """fn(all waiting items of the same fn) -> one result per item; returns this call's results."""
        if self.queue is None:
            self.queue, self.task = asyncio.Queue(), asyncio.create_task(self._loop())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((fn, items, future))
        return await future

    async def _loop(self) -> None:
        while True:
            jobs = [await self.queue.get()]
            while not self.queue.empty() and sum(len(j[1]) for j in jobs) < self.max_batch:
                jobs.append(self.queue.get_nowait())
            for fn in dict.fromkeys(j[0] for j in jobs):  # one pass per kind of work
                mine = [j for j in jobs if j[0] is fn]
                flat = [x for j in mine for x in j[1]]
                try:
                    results = await asyncio.to_thread(self._locked, fn, flat)
                except Exception as exc:
                    if len(mine) == 1:  # the request learns why; the loop goes on
                        if not mine[0][2].done():
                            mine[0][2].set_exception(exc)
                        continue
                    # one request's rows broke the pass: each request alone, so only that one fails
                    for job in mine:
                        await self._one(fn, job)
                    continue
                start = 0
                for _, items, future in mine:
                    if not future.done():
                        future.set_result(results[start:start + len(items)])
                    start += len(items)

    async def _one(self, fn, job) -> None:
        _, items, future = job
        try:
            result = await asyncio.to_thread(self._locked, fn, items)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    def _locked(self, fn, items):
        with self.lock:
            return fn(items)


class Refused(Exception):
    """A request answered with a 4xx: its status and JSON body."""

    def __init__(self, status: int, error: str, **more):
        super().__init__(error)
        self.status, self.body = status, {"error": error, **more}


async def read_request(request, student: Student, max_rows: int) -> tuple[list[dict], bool]:
    """(rows, rationale wanted) of a POST /predict, every row checked; Refused otherwise."""
    too_big = f"The body is over {MAX_BODY // 1024 // 1024} MB."
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise Refused(413, too_big)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Refused(413, too_big)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Refused(400, f"The body is not valid JSON ({type(exc).__name__}: {exc})."[:500]) from None
    try:
        rows, rationale = read_rows(body)
    except AppError as exc:
        raise Refused(422, str(exc)) from None
    if len(rows) > max_rows:
        raise Refused(413, f"{len(rows)} rows in one request; at most {max_rows}.")
    problems = row_problems(student, rows)
    if problems:
        raise Refused(422, f"{len(problems)} of {len(rows)} rows cannot be predicted; nothing was predicted.",
                      rows=problems[:50])
    return rows, rationale


def read_rows(body) -> tuple[list[dict], bool]:
    """(rows, rationale wanted) from a request body, or AppError with what is wrong."""
    if not isinstance(body, dict):
        raise AppError('The body must be a JSON object: {"row": {...}} or {"rows": [...]}.')
    if ("row" in body) == ("rows" in body):
        raise AppError('Give "row" (one row) or "rows" (a list of rows), not both and not neither.')
    rows = [body["row"]] if "row" in body else body["rows"]
    if not isinstance(rows, list) or not rows:
        raise AppError('"rows" must be a non-empty list of row objects.')
    rationale = body.get("rationale", True)
    if not isinstance(rationale, bool):
        raise AppError('"rationale" must be true or false.')
    return rows, rationale


def row_problems(student: Student, rows: list) -> list[dict]:
    """Each bad row's index and reason (a row is an object with every input field, and choices
    for multiple choice)."""
    problems = []
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, dict):
                raise AppError("a row must be a JSON object of input fields.")
            student.input_text(row)
            student.row_choices(row)
        except AppError as exc:
            problems.append({"index": i, "error": str(exc)})
    return problems


def create_app(student: Student, cascade: Cascade | None = None, *, run_id: str | None = None,
               max_rows: int = MAX_ROWS, max_batch: int = 64):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    worker = ModelWorker(max_batch)

    def label_pass(texts_choices: list[tuple[str, list | None]]) -> list[dict]:
        return student.predict([t for t, _ in texts_choices], choices=[c for _, c in texts_choices])

    def rationale_pass(texts: list[str]) -> list[str]:
        return student.rationales(texts)

    async def predict(request):
        try:
            rows, rationale = await read_request(request, student, max_rows)
        except Refused as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        texts = [student.input_text(r) for r in rows]
        choices = [student.row_choices(r) for r in rows]
        try:
            predictions = await worker.run(label_pass, list(zip(texts, choices)))
        except Exception as exc:  # a bug, or an input the model cannot take: said, and the server goes on
            return JSONResponse({"error": f"The student could not predict these rows ({type(exc).__name__}: "
                                          f"{exc})."[:1000]}, status_code=500)
        if cascade is not None:
            deferred = cascade.deferred(predictions)
            answers = (await asyncio.to_thread(cascade.ask, [rows[i] for i in deferred], [choices[i] for i in deferred])
                       if deferred else [])
            out = cascade.merge(predictions, deferred, answers)
        else:
            out = [student_answer(p) for p in predictions]
        own = [i for i, rec in enumerate(out) if rec["answered_by"] == "student"]
        try:
            made = await worker.run(rationale_pass, [texts[i] for i in own]) if rationale and own else []
        except Exception as exc:
            return JSONResponse({"error": f"The student could not explain these rows ({type(exc).__name__}: "
                                          f"{exc})."[:1000]}, status_code=500)
        Cascade.add_rationales(out, texts, rationale, lambda wanted: made)
        for i in own:
            if "probabilities" in predictions[i]:  # the student's, for the label it gave
                out[i]["probabilities"] = predictions[i]["probabilities"]
        return JSONResponse({"predictions": out, "threshold": None if cascade is None else cascade.threshold})

    async def health(request):
        info = {"status": "ok", "run": run_id, "task": student.task, "input_fields": student.input_fields,
                "labels": student.label_set, "calibrated": student.calibrated, "temperature": student.temperature,
                "threshold": None, "cap_usd": None, "teacher_spent_usd": None, "counts": None}
        if cascade is not None:
            spent = await asyncio.to_thread(cascade.spent_usd)
            info.update(threshold=cascade.threshold, cap_usd=cascade.cap_usd, teacher_spent_usd=spent,
                        counts=dict(cascade.counts), teacher_calls_job=cascade.job_id)
        return JSONResponse(info)

    async def not_found(request, exc):
        return JSONResponse({"error": "Not found: POST /predict or GET /health."}, status_code=404)

    async def not_allowed(request, exc):
        return JSONResponse({"error": f"{request.method} is not allowed here."}, status_code=405)

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"])],
                     exception_handlers={404: not_found, 405: not_allowed})


def serve(app, host: str = "127.0.0.1", port: int = 8000, on_ready=None) -> None:
    """Run the app under uvicorn until interrupted (Ctrl-C or SIGTERM); `on_ready()` once the
    port is bound. A port already taken is an AppError, said before anything is served."""
    import socket

    import uvicorn

    try:  # refused here with a clear message, not after a "serving" line
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise AppError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    if on_ready is not None:
        def announce() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                on_ready()
        threading.Thread(target=announce, daemon=True).start()
    server.run()
