"""Import safety matrix, each cell in a fresh Python: the package, the networks, the trainers and nnU-Net's own
trainer lookup through the shim folder work whatever state mamba-ssm and triton are in, and importing never loads
mamba-ssm (it is only probed when a CUDA scan is asked for).

Cells: mamba-ssm absent (import blocked), installed Python-only as here (``import mamba_ssm`` itself fails: no
``selective_scan_cuda``), installed Python-only with a ``selective_scan_cuda`` stub (as when the kernel is built),
and triton absent. (A real kernel build needs a GPU machine; the backend tests cover a broken one.)
"""
from __future__ import annotations

import pytest

from nnunetv2_mamba.training.ext_trainer_folder import trainers_folder
from helpers import run_python

BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError(f'blocked {{name}}')
sys.meta_path.insert(0, Block())
"""

IMPORTS = f"""
import importlib, os, sys
os.environ['nnUNet_extTrainer'] = {str(trainers_folder())!r}
for name in ('nnunetv2_mamba', 'nnunetv2_mamba.nets', 'nnunetv2_mamba.training', 'nnunetv2_mamba.training.trainers'):
    importlib.import_module(name)
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find
assert find('nnUNetTrainerVMUNet_Tiny').__module__ == 'nnunetv2_mamba.training.trainers'
assert find('nnUNetTrainerMambaUNet').__module__ == 'nnunetv2_mamba.training.trainers'
assert find('nnUNetTrainer').__name__ == 'nnUNetTrainer'
print('LOADED', sorted(m for m in ('mamba_ssm', 'selective_scan_cuda', 'causal_conv1d') if m in sys.modules))
"""

CELLS = {
    "mamba-ssm absent": ({"mamba_ssm", "selective_scan_cuda", "causal_conv1d"}, False),
    "mamba-ssm Python-only, no kernel stub": (set(), False),
    "mamba-ssm Python-only with the kernel stub": (set(), True),
    "triton absent": ({"triton"}, False),
}


@pytest.mark.parametrize("cell", CELLS)
def test_imports_and_nnunet_trainer_lookup_survive(cell, tmp_path):
    blocked, stub = CELLS[cell]
    if stub:
        (tmp_path / "selective_scan_cuda.py").write_text("")
    code = (BLOCKER.format(blocked=blocked) if blocked else "") + IMPORTS
    result = run_python(code, pythonpath=tmp_path if stub else None)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "LOADED []"
