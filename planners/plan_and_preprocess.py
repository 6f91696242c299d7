"""`python planners/plan_and_preprocess.py -d 900 [--networks ...] [-np N]` = `nnunetv2_mamba plan_and_preprocess`."""
import sys

from nnunetv2_mamba.cli import main

if __name__ == "__main__":
    sys.exit(main(["plan_and_preprocess", *sys.argv[1:]]))
