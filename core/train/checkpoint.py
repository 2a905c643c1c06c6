"""A run's checkpoint: the weights, the optimizer, the random state, the rest of the epoch and
the resolved config, written atomically every `checkpoint_every` steps and when a run stops
early, so a killed or paused run resumes where it was; and the step best on the validation
rows (`Best`), whose weights the run keeps at the end."""

from __future__ import annotations

import json
from pathlib import Path

from core.kernel.errors import ConfigError

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a kill mid-write leaves the previous checkpoint intact."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict | None:
    import pickle

    import torch

    if not path.exists():
        return None
    try:  # weights_only: a checkpoint someone else could write must not run code when loaded
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ConfigError(f"{path} holds objects other than tensors and plain values; it was not loaded "
                          "(a checkpoint that could run code is refused).") from exc


def run_state(step: int, model, optimizer, rng, batches: list[list[int]], seen: int, seconds: float,
              config: dict) -> dict:
    """Everything a resume needs, with the run's resolved config."""
    import torch

    return {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "python_rng": rng.getstate(), "torch_rng": torch.get_rng_state(), "batches": batches,
            "seen": seen, "elapsed": seconds, "config": config}


def restore(state: dict, model, optimizer, rng) -> tuple[list[list[int]], int, int, float]:
    """Load a checkpoint into the model, optimizer and rng; (batches left, step, seen, seconds)."""
    import torch

    model.load_state_dict(state["model"])
    try:
        optimizer.load_state_dict(state["optimizer"])
    except ValueError:  # a checkpoint from before the decay groups: the moments restart, the weights resume
        pass
    rng.setstate(state["python_rng"])
    torch.set_rng_state(state["torch_rng"])
    return state["batches"], state["step"], state["seen"], state["elapsed"]


class Best:
    """The step whose model scored best on the validation rows (accuracy against gold, else
    agreement with the teacher; the later step on a tie), its weights kept in the run folder so
    that a resumed run still knows it."""

    def __init__(self, out_dir: Path):
        self.weights, self.facts = out_dir / "best_model.pt", out_dir / "best.json"
        known = json.loads(self.facts.read_text()) if self.facts.exists() and self.weights.exists() else {}
        self.step, self.score = known.get("step"), known.get("score")

    def consider(self, step: int, metrics: dict, model) -> None:
        import torch

        score = metrics.get("val_accuracy", metrics.get("val_teacher_agreement"))
        if score is None or (self.score is not None and score < self.score):
            return
        torch.save(model.state_dict(), self.weights)
        self.facts.write_text(json.dumps({"step": step, "score": score}))
        self.step, self.score = step, score

    def restore(self, model) -> None:
        import torch

        if self.step is not None:
            model.load_state_dict(torch.load(self.weights, map_location=next(model.parameters()).device))
            self.weights.unlink()  # the chosen model is saved next; this copy is not needed again
