"""The CLI's flags come from the config dataclasses: every setting has a flag, with the dataclass's default."""

import argparse
import dataclasses

import pytest

from core.cli.flags import cli_fields, config_from_args, flag_name
from core.cli.main import build_parser
from core.label.config import LabelConfig
from core.train.trainer import TrainConfig


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in p._actions for s in a.option_strings}


@pytest.mark.parametrize("command, cls", [("train", TrainConfig), ("label", LabelConfig)])
def test_every_config_field_has_a_flag_whose_default_is_the_dataclass_default(command, cls):
    options = _options(_subparser(command))
    internal = {f.name for f in dataclasses.fields(cls)} - {f.name for f in cli_fields(cls)}
    assert internal <= {"out_dir", "extra", "row_ids", "reread_model", "explain_corrections", "store_answers"}  # set by the program (reread_model: `core reread`)
    for f in cli_fields(cls):
        name = flag_name(f) if f.name == "project" or f.default is not True else "--no-" + flag_name(f)[2:]
        assert name in options, f"{cls.__name__}.{f.name} has no {name} flag on `{command}`"
    args = build_parser().parse_args([command, "--project", "p"])
    assert config_from_args(cls, args) == cls(project="p")


def test_flag_names_kept_where_they_differ_from_the_field():
    train, label = _options(_subparser("train")), _options(_subparser("label"))
    assert train["--lr"].dest == "learning_rate" and train["--approved-only"].dest == "approved_rationales_only"
    assert label["--budget"].dest == "budget_usd" and label["--poll-interval"].dest == "poll_interval_s"


def test_parsed_flags_build_the_config():
    args = build_parser().parse_args(["train", "--project", "p", "--lr", "0.001", "--approved-only",
                                      "--eval-every", "0", "--objective", "standard"])
    cfg = config_from_args(TrainConfig, args)
    assert (cfg.learning_rate, cfg.approved_rationales_only, cfg.eval_every) == (0.001, True, 0)
    assert cfg.objective == "standard"
    args = build_parser().parse_args(["label", "--project", "p", "--budget", "2.5", "--batch", "--relabel", "stale"])
    cfg = config_from_args(LabelConfig, args)
    assert (cfg.budget_usd, cfg.batch, cfg.relabel, cfg.row_ids) == (2.5, True, "stale", None)


def test_sweep_grid_flags_take_several_values():
    args = build_parser().parse_args(["sweep", "--project", "p", "--seed", "0", "1", "--lr", "0.01"])
    assert args.seed == [0, 1] and args.objective == ["multitask", "standard"] and args.alpha == [TrainConfig.alpha]
    assert args.learning_rate == 0.01
