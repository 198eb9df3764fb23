"""The run options that every command line of the project shares — ``--preset``,
``--set FIELD=VALUE`` and ``--data-root`` — defined once for ``python -m dartsrenet``
and the sweep scripts (``sweeps/``), with one meaning and one destination each:
``args.preset``, ``args.overrides`` (the raw ``FIELD=VALUE`` items, in order) and
``args.data_root``."""

from __future__ import annotations

import argparse
from typing import Any

from dartsrenet.config import PRESETS, config_fields


def add_run_options(
    parser: argparse.ArgumentParser | Any,
    config_class: type | None = None,
    *,
    data_root_default: str | None = None,
    data_root_help: str = "where datasets are stored (default: data)",
    set_help: str | None = None,
) -> None:
    """Add ``--preset``, ``--set`` and ``--data-root`` to ``parser`` (or an argument group).

    Args:
        config_class: the config the ``--set`` fields belong to (listed in the help);
            ``None`` when they may belong to either (the sweeps name them in ``set_help``).
        data_root_default: ``--data-root``'s default (``None``: the preset's).
        data_root_help: ``--data-root``'s help text.
        set_help: ``--set``'s help text (default: the fields of ``config_class``).
    """
    parser.add_argument(
        "--preset", default="paper", metavar="|".join(PRESETS) + "|FILE",
        help="configuration preset: a name (paper = the paper's setup; demo = small and fast on digits), "
        "or a preset JSON file such as tune_hparams.py writes (default: paper)",
    )
    if set_help is None:
        fields = f" Fields: {', '.join(config_fields(config_class))}" if config_class is not None else ""
        set_help = f"override a config field (repeatable): --set lr=0.05 --set epochs=3.{fields}"
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE", help=set_help
    )
    parser.add_argument("--data-root", dest="data_root", default=data_root_default, metavar="DIR", help=data_root_help)
