"""The one package that owns the DuckDB database: connection, schema, migrations, queries.

DuckDB lets only one *process* open a database file at a time. The app, the CLI and
background jobs (labeling, training) are separate processes, so nobody keeps the
file open: every operation opens a short-lived connection, runs inside a
transaction, and closes it. A process that finds the file locked retries with
backoff for up to `busy_timeout_s`. All SQL is parameterised.

Who owns what:
  connection.py  Database: connections, transactions, migrations (migrations/NNNN_*.sql)
  schema.py      the schema snapshot schema.sql (`python -m core.db.schema` regenerates it)
  projects.py    projects, prompt_templates
  items.py       items (import, sampling, lookup, export)
  review.py      audit_log, spot_checks (and the review columns of items)
  review_events.py  review_events (every decision: blind, shown, timed, undone), rationale_checks
  teacher.py     teacher_cache, teacher_calls, token_counts (and the teacher columns of items)
  ledger.py      spend_ledger (reservations that make a budget cap hold across processes)
  batches.py     teacher_batches, teacher_batch_requests
  jobs.py        jobs, label_leases, run_metrics, student_predictions
  import_scan.py not the store: the private in-memory DuckDB that scans a file being imported
  progress.py    counts across tables (workflow stage, active jobs, forecast change counts)
  trials.py      prompt_trials, prompt_trial_rows (a template tried on a few rows)
"""

from core.db.batches import BatchTables
from core.db.connection import (
    DEFAULT_DB_ENV,
    DEFAULT_DB_PATH,
    MIGRATIONS,
    Database,
    default_db_path,
    migrations,
)
from core.db.items import ITEM_COLUMNS, ItemTables
from core.db.jobs import JobTables
from core.db.ledger import LedgerTables
from core.db.progress import ProgressQueries
from core.db.projects import Project, ProjectTables
from core.db.review import REVIEW_FILTERS, REVIEW_SORTS, ReviewTables
from core.db.review_events import ReviewEventTables
from core.db.teacher import (
    CACHE_COLUMNS,
    CALL_COLUMNS,
    RESULT_COLUMNS,
    TeacherTables,
    TeacherWrites,
)
from core.db.trials import TrialTables


class Store(ProjectTables, ItemTables, ReviewTables, ReviewEventTables, TeacherTables, LedgerTables, BatchTables,
            JobTables, TrialTables, ProgressQueries, Database):
    """Owns one DuckDB file: the connection handling of Database plus the queries of every
    group of tables. Cheap to create; connections are opened per operation."""


__all__ = [
    "CACHE_COLUMNS",
    "CALL_COLUMNS",
    "DEFAULT_DB_ENV",
    "DEFAULT_DB_PATH",
    "ITEM_COLUMNS",
    "MIGRATIONS",
    "RESULT_COLUMNS",
    "REVIEW_FILTERS",
    "REVIEW_SORTS",
    "Project",
    "Store",
    "TeacherWrites",
    "default_db_path",
    "migrations",
]
