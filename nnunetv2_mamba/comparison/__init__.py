"""Fair comparison of nnU-Net trainers: same plans, splits and budget; Table-1 metrics, statistics, costs, report."""
