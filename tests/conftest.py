"""The end-to-end tests call nnU-Net's console scripts (nnUNetv2_train, ...) by name, as a user types them:
put the scripts folder of the interpreter running the tests first on PATH, so an unactivated virtualenv
(``venv/bin/python -m pytest``, as scripts/run.sh and CI run it) finds its own nnU-Net."""
import os
import sys

os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
