"""benchmarks/recipe_study.py's summary stage: a final table per budget puts each fold's held-out test Dice per
data set beside its mean and its difference to the CNN on the same folds, averages that difference over the data
sets once a trainer has run on each, never mixes budgets, and keeps the hand-written reading below the marker."""
import importlib.util
import json

import pytest

from helpers import REPO

spec = importlib.util.spec_from_file_location("recipe_study", REPO / "benchmarks" / "recipe_study.py")
recipe_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe_study)

CNN, MAMBA, VM = "nnUNetTrainer", "nnUNetTrainerMambaUNet_AdamW2em3Cosine", "nnUNetTrainerVMUNet_AdamW2em3Cosine"


def write_final_run(study, dataset, budget, fold, dice_by_trainer):
    """A results.json as the harness writes it, reduced to what the summary reads."""
    folder = study / "results" / "study" / "final" / f"{dataset}_{budget[0]}x{budget[1]}_fold{fold}"
    folder.mkdir(parents=True)
    test = {trainer: {"aggregate": {"mean": {"Dice": {"mean": dice}}}} for trainer, dice in dice_by_trainer.items()}
    (folder / "results.json").write_text(json.dumps({"splits": {"test": test}}))


def table_rows(markdown: str, heading: str) -> dict[str, list[str]]:
    """{first cell: other cells} of every row (the header too) of the table under ``heading``."""
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows}


@pytest.fixture
def study(tmp_path, monkeypatch):
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):  # main() exports nnU-Net's folders
        monkeypatch.setenv(variable, "unset")
    return tmp_path / "study"


def test_final_table_gives_each_fold_their_mean_and_the_difference_to_the_cnn_on_the_same_folds(study):
    write_final_run(study, "cardiac", (40, 25), 0, {CNN: 0.96, MAMBA: 0.95, VM: 0.93})
    write_final_run(study, "cardiac", (40, 25), 1, {CNN: 0.98, MAMBA: 0.93})  # VM-UNet left out of fold 1
    write_final_run(study, "two_channel", (40, 25), 0, {CNN: 0.80, MAMBA: 0.85})
    write_final_run(study, "two_channel", (10, 25), 0, {CNN: 0.10, MAMBA: 0.10, VM: 0.10})  # another budget
    summary = study / "doc.md"

    recipe_study.main(["-o", str(study), "--stages", "summary", "--datasets", "cardiac", "two_channel",
                       "--summary", str(summary)])

    text = summary.read_text()
    rows = table_rows(text, "## Final: 1000 iterations (40 x 25), folds 0, 1")
    assert rows["trainer"] == ["cardiac", "two_channel", "mean Δ"]
    assert rows[CNN] == ["0.960 / 0.980 (0.970)", "0.800", ""]
    assert rows[MAMBA] == ["0.950 / 0.930 (0.940, Δ -0.030)", "0.850 (Δ +0.050)", "+0.010"]
    assert rows[VM] == ["0.930 / – (Δ -0.030)", "", ""]  # paired with the CNN's fold 0; no mean Δ: one data set
    other = table_rows(text, "## Final: 250 iterations (10 x 25), fold 0")
    assert other["trainer"] == ["two_channel", "mean Δ"] and other[VM] == ["0.100 (Δ +0.000)", "+0.000"]
    assert text.index("## Final: 250 iterations") < text.index("## Final: 1000 iterations")


def test_summary_keeps_the_hand_written_reading_and_records_the_commands(study):
    write_final_run(study, "cardiac", (40, 25), 0, {CNN: 0.9, MAMBA: 0.8})
    summary = study / "doc.md"
    arguments = ["-o", str(study), "--stages", "summary", "--datasets", "cardiac", "--summary", str(summary)]
    recipe_study.main(arguments)
    summary.write_text(summary.read_text() + "## Reading\n\nwritten by hand\n")

    recipe_study.main(arguments)

    text = summary.read_text()
    assert text.count(recipe_study.NOTES_MARKER) == 1
    assert text.endswith(recipe_study.NOTES_MARKER + "\n## Reading\n\nwritten by hand\n")
    assert text.count("python benchmarks/recipe_study.py " + " ".join(arguments)) == 1  # the rerun resumed it
    assert table_rows(text, "## Final: 1000 iterations (40 x 25), fold 0")[MAMBA] == ["0.800 (Δ -0.100)", "-0.100"]
