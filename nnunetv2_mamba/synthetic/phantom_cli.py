"""``nnunetv2_mamba make-phantom OUT_DIR``: shorthand for ``make-dataset cardiac OUT_DIR``."""
from __future__ import annotations

from nnunetv2_mamba.synthetic import cli


def add_arguments(parser) -> None:
    cli.add_output_arguments(parser, "900")


def run(args) -> int:
    args.kind = "cardiac"
    return cli.run(args)
