"""Command line: ``python -m dartsrenet params|search|train`` (run ``--help`` on each)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dartsrenet import paper
from dartsrenet.config import SearchConfig, TrainConfig, parse_overrides, resolve_config
from dartsrenet.data import DATASET_NAMES
from dartsrenet.genotypes import PAPER_GENOTYPES
from dartsrenet.networks import build_eval_model, count_parameters
from dartsrenet.run_options import add_run_options
from dartsrenet.variants import VARIANTS


def params_command(args: argparse.Namespace) -> int:
    """Print the parameter count of Table 1's five networks beside the paper's figure."""
    print(f"{'model':<42} {'params':>12} {'(M)':>6} {'paper (M)':>10}")
    for name in paper.MODELS:
        model = build_eval_model(name, num_classes=args.num_classes, channels=args.channels)
        count = count_parameters(model)
        print(f"{paper.MODEL_LABELS[name]:<42} {count:>12,} {count / 1e6:>6.1f} {paper.PARAMS_MILLIONS[name]:>10.1f}")
    return 0


def _overrides(args: argparse.Namespace, names: Sequence[str]) -> dict[str, str]:
    """Explicit options first, then ``--set field=value`` (which wins)."""
    values = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if getattr(args, "download", False):
        values["download"] = True
    values.update(parse_overrides(args.overrides))
    return values


def search_command(args: argparse.Namespace) -> int:
    """Run (or resume) one DARTS cell search."""
    from dartsrenet.search import run_search

    config = resolve_config("search", args.preset, _overrides(args, ["variant", "dataset", "seed", "out", "device", "data_root", "epochs"]))
    summary = run_search(config)
    if "selection" in summary:
        print(f"genotype selected by {summary['selection']} on the trained supernet:")
    else:
        print(f"best genotype (epoch {summary['best_epoch']}, val_cs accuracy {summary['best_val_accuracy']:.4f}):")
    print(f"  {summary['genotype_string']}")
    print(f"run folder: {config.out}")
    return 0


def select_command(args: argparse.Namespace) -> int:
    """Choose a genotype on an existing search run's trained supernet."""
    from dartsrenet.strategies.selection import select_on_run

    record = select_on_run(args.run, args.method, parse_overrides(args.overrides))
    print(f"{args.method} selected {record['genotype']}")
    print("wrote " + ", ".join(record["files"]))
    return 0


def train_command(args: argparse.Namespace) -> int:
    """Run (or resume) one evaluation training."""
    from dartsrenet.train import run_train

    if (args.genotype is None) == (args.cell is None):
        raise ValueError("give exactly one of --genotype FILE|NAME|STRING and --cell gru|lstm")
    overrides = _overrides(args, ["variant", "dataset", "seed", "out", "device", "data_root", "epochs"])
    overrides["cell"] = args.genotype if args.genotype is not None else args.cell
    config = resolve_config("train", args.preset, overrides)
    summary = run_train(config)
    print(
        f"test accuracy {summary['test_accuracy']:.4f} (epoch {summary['best_epoch']} selected on validation "
        f"accuracy {summary['best_val_accuracy']:.4f}); {summary['params']:,} parameters"
    )
    print(f"run folder: {config.out}")
    return 0


def _add_common_run_options(parser: argparse.ArgumentParser, config_class: type) -> None:
    datasets = ", ".join(DATASET_NAMES)
    parser.add_argument("--dataset", help=f"dataset name: {datasets} (default: the preset's, else cifar10)")
    parser.add_argument("--seed", type=int, help="seed of init, splits, data order and augmentation (default: 0)")
    parser.add_argument("--epochs", type=int, help="number of epochs (default: the preset's)")
    parser.add_argument(
        "--out", help=f"run folder; a folder holding a checkpoint is resumed (default: {config_class.out})"
    )
    parser.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument(
        "--download", action="store_true",
        help="let torchvision download a missing dataset (needs internet; cifar10, svhn, fashion_mnist)",
    )
    add_run_options(parser, config_class)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dartsrenet",
        description="DartsReNet: DARTS-searched RNN cells in ReNet image classifiers.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    params = commands.add_parser(
        "params", help="parameter counts of the paper's five networks (Table 1)",
        description="Print the trainable parameter count of the five CIFAR-10 evaluation networks "
        "of Table 1 beside the paper's figure.",
    )
    params.add_argument("--num-classes", type=int, default=10, help="classes of the head (default: 10, CIFAR-10)")
    params.add_argument("--channels", type=int, default=256, help="N, channels of stem and ReNet layers (default: 256)")
    params.set_defaults(handler=params_command)

    search = commands.add_parser(
        "search", help="run a DARTS cell search (docs/architecture.md §3)",
        description="First-order DARTS cell search: α (Adam) on val_cs, weights (SGD/Adam) on train_cs, "
        "each half of the training set. Writes a run folder with metrics, α history, checkpoint and the "
        "genotype of the best val_cs epoch; rerunning on the same --out resumes.",
    )
    search.add_argument("--variant", help=f"search-space variant: {', '.join(VARIANTS)} (default: vanilla)")
    _add_common_run_options(search, SearchConfig)
    search.set_defaults(handler=search_command)

    select = commands.add_parser(
        "select", help="choose a genotype on a finished search's supernet (rsws, darts_pt)",
        description="Rank sampled genotypes by the supernet's validation accuracy (rsws) or choose each node "
        "by perturbation (darts_pt) on the trained supernet of a search run folder; writes "
        "selection-METHOD.json and genotype-METHOD.json there (docs/search-strategies.md).",
    )
    select.add_argument("--run", required=True, help="a search run folder (holding config.json and checkpoint/)")
    select.add_argument("--method", required=True, choices=["rsws", "darts_pt"], help="the selection")
    select.add_argument(
        "--set", dest="overrides", action="append", metavar="FIELD=VALUE",
        help="rsws_candidates, pt_finetune_steps, selection_batches or device (repeatable)",
    )
    select.set_defaults(handler=select_command)

    train = commands.add_parser(
        "train", help="train and test an evaluation network (docs/architecture.md §6)",
        description="Train the evaluation network of a derived cell or a GRU/LSTM baseline from scratch, "
        "select the epoch on a validation split (eval mode) and report the test accuracy of that epoch. "
        "Rerunning on the same --out resumes.",
    )
    cell = train.add_mutually_exclusive_group()
    cell.add_argument(
        "--genotype", metavar="FILE|NAME|STRING",
        help=f"a genotype JSON file, a paper genotype ({', '.join(PAPER_GENOTYPES)}; implies its variant) "
        "or a genotype string 'relu:0,sigmoid:1,…'",
    )
    cell.add_argument("--cell", choices=["gru", "lstm"], help="a baseline ReNet cell instead of a genotype")
    train.add_argument(
        "--variant", help=f"variant of a DARTS cell: {', '.join(VARIANTS)} (default: implied by a paper genotype, else vanilla)"
    )
    _add_common_run_options(train, TrainConfig)
    train.set_defaults(handler=train_command)
    return parser


LIBRARY_ERRORS = (ValueError, OSError, RuntimeError, FloatingPointError)
"""What the library raises for bad input, missing or corrupt files and non-finite numbers
(ConfigError, UnknownNameError, GenotypeError, DatasetNotFoundError, CheckpointError,
ConfigMismatchError, WriteError, NonFiniteLossError, NonFiniteOutputError, ...)."""


def error_line(error: BaseException) -> str:
    """``error: <message>`` on one line (a multi-line message is joined with spaces)."""
    return "error: " + " ".join(part.strip() for part in str(error).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except LIBRARY_ERRORS as error:
        # Bad input, missing data, unreadable checkpoints, NaN: one clear line, no traceback, exit 2.
        print(error_line(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
