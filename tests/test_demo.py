"""``nnunetv2_mamba demo --quick`` end to end in a subprocess: phantom, plan, train 3 trainers, predict, report."""
import json
import sys

import numpy as np
from PIL import Image

from nnunetv2_mamba.evaluation.metrics import METRICS
from helpers import nnunetv2_mamba, run


def test_quick_demo_writes_a_complete_report(nnunet_workspace):
    env = {k: v for k, v in nnunet_workspace["env"].items() if not k.startswith("nnUNet_")}  # the demo sets them
    work = nnunet_workspace["root"] / "work"
    result = nnunetv2_mamba(env, "demo", "--quick", "-o", str(work), "-device", "cpu")
    assert result.returncode == 0, result.stdout[-6000:]
    report_dir = work / "report"
    assert str(report_dir / "report.md") in result.stdout

    text = (report_dir / "report.md").read_text()
    main_table = text.split("## Test: mean over classes")[1].split("##")[0]
    rows = [line for line in main_table.splitlines() if line.startswith("| nnUNetTrainer")]
    assert len(rows) == 3
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 1 + len(METRICS) and "n/a" not in cells, row
    cost_table = text.split("## Cost")[1].split("##")[0]
    cost_rows = [line for line in cost_table.splitlines() if line.startswith("| nnUNetTrainer")]
    assert len(cost_rows) == 3
    for row in cost_rows:  # params, GFLOPs / patch, peak memory, train s/it, infer s/case, GFLOPs / step measured
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert "n/a" not in cells[3:9], row
    results = json.loads((report_dir / "results.json").read_text())
    assert set(results["splits"]) == {"validation", "test"}
    assert all(len(split["nnUNetTrainer"]["cases"]) >= 1 for split in results["splits"].values())

    pngs = sorted(report_dir.glob("*.png"))
    assert {p.name for p in pngs} >= {"dice_histogram_test.png", "overlays_test.png", "training_curves.png"}
    for png in pngs:
        image = np.asarray(Image.open(png).convert("L"), dtype=float)
        assert min(image.shape) > 100 and image.std() > 0, png
        png.unlink()

    # every figure comes back from the saved JSON alone
    run([sys.executable, "-c", "import sys; from nnunetv2_mamba.comparison.report import write_report; "
         "write_report(sys.argv[1])", str(report_dir)], env)
    assert sorted(report_dir.glob("*.png")) == pngs
