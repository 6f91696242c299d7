import sys

from nnunetv2_mamba.cli import main

sys.exit(main())
