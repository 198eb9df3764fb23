"""Command line: ``python -m dartsrenet params|search|train`` (run ``--help`` on each)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dartsrenet import paper
from dartsrenet.networks import build_eval_model, count_parameters


def params_command(args: argparse.Namespace) -> int:
    """Print the parameter count of Table 1's five networks beside the paper's figure."""
    print(f"{'model':<42} {'params':>12} {'(M)':>6} {'paper (M)':>10}")
    for name in paper.MODELS:
        model = build_eval_model(name, num_classes=args.num_classes, channels=args.channels)
        count = count_parameters(model)
        print(f"{paper.MODEL_LABELS[name]:<42} {count:>12,} {count / 1e6:>6.1f} {paper.PARAMS_MILLIONS[name]:>10.1f}")
    return 0


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
