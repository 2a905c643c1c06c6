"""A labeling run's settings (LabelConfig, as stored in its job row; the CLI's flags and the
Label page's widgets take their defaults from it) and what a run reports (LabelSummary)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from core.kernel.errors import ConfigError
from core.prompt.planner import check_plan_args


@dataclass
class LabelConfig:
    """One labeling run, as stored in its job row. The CLI's flags and the Label page's
    widgets take their defaults from here."""

    project: str
    model: str | None = field(default=None, metadata={"help": "teacher model (default: the project's)"})
    concurrency: int = field(default=8, metadata={"help": "requests in flight at once"})
    limit: int | None = field(default=None, metadata={"help": "label at most this many rows (default: all due)"})
    # This run's cap; the project's cap binds as well.
    budget_usd: float | None = field(default=None, metadata={
        "flag": "--budget", "help": "stop before spend could pass this many USD"})
    batch: bool = field(default=False, metadata={
        "help": "use the Message Batches API (50% cheaper; resumable)"})  # results within 24 h
    poll_interval_s: float = field(default=10.0, metadata={
        "flag": "--poll-interval", "help": "seconds between batch status polls"})
    row_ids: list[str] | None = field(default=None, metadata={"cli": False})  # only these rows (a pilot)
    relabel: str | None = field(default=None, metadata={
        "help": "also re-send rows whose answer failed to parse (failed), was given to an older prompt (stale), "
                "or every row (all); identical requests come from the cache"})
    rationale_fraction: float = field(default=1.0, metadata={
        "help": "share of rows asked for a rationale (stratified by gold label); the rest get a label-only "
                "prompt with a small max_tokens"})
    seed: int = field(default=0, metadata={"help": "which rows form the rationale share"})
    # A re-read run (core.label.reread): this model reads the unread stored answers again; nothing
    # is asked of the teacher. Set by `core reread` and the Prompt page, not a flag of `label`.
    reread_model: str | None = field(default=None, metadata={"cli": False})
    # An explain run (core.label.explain): the teacher explains the labels reviewers corrected.
    # Set by `core explain-corrections` and the Review page, after their quote.
    explain_corrections: bool = field(default=False, metadata={"cli": False})
    # False (a try of a prompt, unless asked): the answers go to the cache and the try's record
    # only; the rows keep the answers they had.
    store_answers: bool = field(default=True, metadata={"cli": False})

    def validate(self) -> LabelConfig:
        check_plan_args(self.relabel, self.rationale_fraction)
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit must be at least 1 row (or none).")
        if self.budget_usd is not None and self.budget_usd < 0:
            raise ConfigError("a budget must be zero or more dollars.")
        if self.poll_interval_s <= 0:
            raise ConfigError("the poll interval must be positive.")
        return self

    @classmethod
    def from_job(cls, job: dict) -> LabelConfig:
        """The config of a job row (older rows lack the project and some fields)."""
        known = {k: v for k, v in job["config"].items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "project": job["project"]}).validate()

    def as_job_config(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "project"}


@dataclass
class LabelSummary:
    rows: int = 0            # rows this run set out to label
    requests: int = 0        # requests sent to the API (each may be retried by the SDK)
    cache_hits: int = 0      # rows served from the response cache, not billed
    labeled: int = 0         # rows with a parsed label
    flagged: int = 0         # rows whose response could not be parsed cleanly
    errors: int = 0          # rows whose call failed
    cost_usd: float = 0.0    # billed in this run
    seconds: float = 0.0
    stopped: str | None = None  # None | budget | cancelled | paused
    recorded_demo: int = 0   # rows answered by the recorded demo teacher
    batches: int = 0         # batches submitted by this run (batch mode)
    rate_limited: int = 0    # 429 answers seen (each was waited out and retried by the SDK)
    replayed: int = 0        # paid answers of an earlier run recovered from its spool, not asked again
    batch_rounds: int = 0    # rounds sent after earlier batches settled and freed their worst-case reservation
    adopted_batches: int = 0  # batches created by an interrupted run, found at the API and adopted
    held_by_batches: int = 0  # rows skipped because an open batch may still answer them
    rationale_requests: int = 0   # requests sent with the project's prompt (label and rationale)
    label_only_requests: int = 0  # requests sent with the label-only prompt (outside the rationale fraction)

    def as_dict(self) -> dict:
        return asdict(self)
