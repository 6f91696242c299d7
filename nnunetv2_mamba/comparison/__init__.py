"""Fair comparison by nnU-Net's rules: each method (a trainer on its own plans) over the same cross-validation
splits and budget, nnU-Net's ensembling and model selection, Table-1 metrics, statistics, costs, report; its jobs run
inline, in parallel or on SLURM (``execution``)."""
