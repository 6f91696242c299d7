"""The checks of ``benchmarks/gpu_check.py``. Importing :mod:`.all_checks` registers them, in report order."""
