"""The planner classes, e.g. `plan_experiment_dataset(900, nnUNetPlannerMambaUNet)` from nnU-Net's Python API."""
from nnunetv2_mamba.experiment_planning.planners import nnUNetPlannerMambaUNet, nnUNetPlannerVMUNet  # noqa: F401
