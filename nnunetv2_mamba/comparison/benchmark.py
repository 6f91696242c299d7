"""The benchmark: each method trained on its own plans, splits and budget through nnU-Net, scored, ensembled by
nnU-Net's own model selection, predicted on a test folder, reported.

A run is one value, ``FoldRun``: a compared model (``Model``: trainer with its budget, plans, configuration) and a
fold. Its results folder, what is left to do for it, its job and its report entry all come from it. An executor
only decides where a run's command executes.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from nnunetv2_mamba.comparison import ensembles, plans as plans_module
from nnunetv2_mamba.comparison.execution import (ExecutorSettings, Job, ReportOnlyExecutor, job_key, job_log,
                                                  make_executor)
from nnunetv2_mamba.comparison.execution.jobs import KEY_SEPARATOR
from nnunetv2_mamba.comparison.execution.report_only import NOT_SUBMITTED
from nnunetv2_mamba.comparison.device_jobs import device_job
from nnunetv2_mamba.comparison.job_device import DEVICE, read_where, where_file
from nnunetv2_mamba.comparison.methods import (MAMBA_SPECS, Method, MethodError, default_methods, ensemble_members,
                                                run_trainer_name)
from nnunetv2_mamba.comparison.prediction import is_predicted, prediction_job, prediction_timing, test_cases
from nnunetv2_mamba.comparison.report import save_results, write_report
from nnunetv2_mamba.comparison.predict_best import predict_best
from nnunetv2_mamba.comparison.runs import FoldRun, read_training_log
from nnunetv2_mamba.comparison.workspace import CPU_SETTINGS, NnUNetPaths, cpu_settings, nnunet_environment
from nnunetv2_mamba.evaluation.aggregate import CLASS_MEAN
from nnunetv2_mamba.evaluation.folder import evaluate_folder

NNUNET_EPOCHS, NNUNET_ITERATIONS_PER_EPOCH = 1000, 250
ALL_FOLDS = [0, 1, 2, 3, 4]
BEST = "best"  # prefix of the report's row for nnU-Net's chosen model or ensemble


@dataclass
class BenchmarkConfig:
    """What to compare and how; the first method is the baseline. ``trainers``: method specs (``Method.parse``:
    ``SPEC_FORMS``), None for nnU-Net's recommended comparison (``default_methods``). Every trainer trains for
    ``epochs`` x ``iterations_per_epoch`` (default nnU-Net's 1000 x 250) unless its name carries a budget already.
    ``controls`` adds each Mamba method's scan controls; ``repeats`` N trains every (method, fold) with seeds 0..N-1
    (None: unseeded run names)."""
    dataset_id: int
    trainers: list[str] | None = None
    configuration: str = "2d"
    folds: list[int] = field(default_factory=lambda: [0])
    epochs: int = NNUNET_EPOCHS
    iterations_per_epoch: int = NNUNET_ITERATIONS_PER_EPOCH
    baseline_preset: str = "M"
    baseline_batch_size: int | None = None
    ensembles: bool = False
    test_images: Path | None = None
    test_labels: Path | None = None
    report_dir: Path | None = None
    device: str = "auto"
    disable_tta: bool = False
    executor: str = "inline"
    executor_settings: ExecutorSettings | None = None
    wait: bool = True
    report_only: bool = False
    controls: bool = False
    repeats: int | None = None

    def __post_init__(self):
        """Every method and run name checked (``MethodError``, ``TrainerNameError``) before anything runs."""
        if self.repeats is not None and self.repeats < 1:
            raise MethodError(f"--repeats {self.repeats}: give the number of seeded repeats of every run, 1 or more "
                              "(2 or more measure the noise floor).")
        self.trained_as_by_seed()

    @property
    def seeds(self) -> list[int | None]:
        """The seeds every (method, fold) trains with: 0..repeats-1, or [None] (unseeded names) without repeats."""
        return [None] if self.repeats is None else list(range(self.repeats))

    def methods(self) -> dict[str, Method]:
        """{report name: method}, in the order given, each Mamba method followed by its scan controls with
        ``controls``."""
        methods = (default_methods(self.configuration, self.baseline_preset, self.baseline_batch_size)
                   if self.trainers is None else [Method.parse(s, self.configuration) for s in self.trainers])
        if self.controls:
            from nnunetv2_mamba.training.trainer_variants import CONTROLS

            if not any(m.has_scan for m in methods):
                raise MethodError("--controls trains the scan controls (NoScan, OneWay) of the Mamba-UNet and VM-UNet "
                                  f"methods, and --trainers names none: add one, e.g. {MAMBA_SPECS[0]}.")
            methods = [c for m in methods for c in [m, *(m.control(k) for k in CONTROLS if m.has_scan)]]
        named = {m.name(self.configuration): m for m in methods}
        if len(named) != len(methods):
            raise SystemExit("a method is named twice in --trainers; give each (trainer, plans, configuration) once"
                             + (" (--controls adds the scan controls itself)." if self.controls else "."))
        return named

    def trained_as_by_seed(self) -> dict[str, dict[int | None, str]]:
        """{method name: {seed: trainer run}}: trainer X runs as ``X_<E>ep<I>it`` (a name with a budget keeps its
        own), seeded repeats as ``X_<E>ep<I>it_seed<K>``."""
        return {name: {seed: run_trainer_name(m.trainer, self.epochs, self.iterations_per_epoch, seed)
                       for seed in self.seeds} for name, m in self.methods().items()}

    def trained_as(self) -> dict[str, str]:
        """{method name: the trainer run of its first seed}: the run of its report rows, nnU-Net's selection, its
        cost and its test predictions."""
        return {name: runs[self.seeds[0]] for name, runs in self.trained_as_by_seed().items()}


@dataclass
class Benchmark:
    """A configured benchmark on one dataset: its methods' runs and where everything goes."""
    config: BenchmarkConfig
    paths: NnUNetPaths

    def __post_init__(self):
        config = self.config
        self.dataset = self.paths.dataset_name(config.dataset_id)
        self.report_dir = Path(config.report_dir or self.paths.results / self.dataset /
                               f"benchmark_{config.configuration}")
        self.logs = self.report_dir / "logs"
        self.methods = config.methods()
        self.trained_as = config.trained_as()
        self.seed_runs = {name: {seed: [FoldRun(self.methods[name].model(trainer), fold, self.dataset,
                                                self.paths.results) for fold in config.folds]
                                 for seed, trainer in by_seed.items()}
                          for name, by_seed in config.trained_as_by_seed().items()}
        # the first seed's runs: each method's report rows, nnU-Net's selection, cost and test predictions
        self.runs = {name: by_seed[config.seeds[0]] for name, by_seed in self.seed_runs.items()}
        self.env = nnunet_environment(self.paths)

    @property
    def preprocessed(self) -> Path:
        return self.paths.preprocessed / self.dataset

    def dataset_json(self) -> dict:
        return json.loads((self.preprocessed / "dataset.json").read_text())

    @property
    def dataset_results(self) -> Path:
        return self.paths.results / self.dataset

    def check_inputs(self) -> None:
        """Every error the input can cause, before anything is planned or trained."""
        config = self.config
        if not config.wait and config.executor == "inline":
            raise SystemExit("--no-wait leaves jobs running elsewhere: use it with --executor local or slurm.")
        if (config.test_images is None) != (config.test_labels is None):
            raise SystemExit("give --test-folder and --test-labels together (images and their reference labels).")
        stock = plans_module.plans_file(self.paths, self.dataset, "nnUNetPlans")
        if not stock.is_file():
            raise SystemExit(f"{stock} is missing; run nnUNetv2_plan_and_preprocess -d {config.dataset_id} -c "
                             f"{config.configuration} first.")
        folds = _fold_count(self.preprocessed)
        wrong = [f for f in config.folds if not 0 <= f < folds]
        if wrong:
            raise SystemExit(f"fold {', '.join(map(str, wrong))} does not exist: the dataset has {folds} folds "
                             f"(0-{folds - 1}, splits_final.json); --folds all trains them all.")

    def stock_plans(self) -> Path:
        return plans_module.plans_file(self.paths, self.dataset, plans_module.STOCK_PLANS)

    def prepare_plans(self) -> None:
        """Each method's plans made where missing; with ``-device cpu`` also checked against the CPU here
        (``PlansError`` says why); for a device only the job knows, the training job checks them."""
        env = nnunet_environment(self.paths, planning=True)
        for name, method in self.methods.items():
            done = plans_module.prepare_plans(method, self.paths, self.dataset, self.config.dataset_id, env,
                                              self.logs / "plans.log")
            if done:
                print(f"[benchmark] {name}: {done}", flush=True)
            if self.config.device == "cpu":
                plans_module.check_runs_on_device(method, self.plans_of(name), self.stock_plans(), "cpu")

    def plans_of(self, name: str) -> Path:
        return plans_module.plans_file(self.paths, self.dataset, self.methods[name].plans)

    def training_jobs(self, executor) -> list[Job]:
        """``nnUNetv2_train`` for every run that is not finished (with ``--npz`` probabilities for ensembles), each
        on the device its job gets, which checks the method's plans fit it first."""
        jobs, npz = [], self.config.ensembles
        for name, by_seed in self.seed_runs.items():
            method = self.methods[name]
            check = (method.folder_name(method.trainer), self.plans_of(name), self.stock_plans())
            for run in (run for runs in by_seed.values() for run in runs):
                others = run.finished_with_other_budgets()
                tqdm.write(f"{run.model.identifier} fold {run.fold}: {run.status(npz)} -> {run.folder}"
                           + (f" (finished with another budget, not reused: {', '.join(others)})" if others else ""))
                if not run.is_finished(npz):
                    jobs.append(device_job(run.key, run.train_command(self.config.dataset_id, npz),
                                           self.config.device, executor, self.env, self.train_log(run), check))
        return jobs

    def train_log(self, run: FoldRun) -> Path:
        return job_log(self.logs, run.key)

    def cost_jobs(self, executor, names: list[str]) -> list[Job]:
        """The cost measurement of each method in ``names`` not measured yet, as a job on the kind of node its
        training ran on (``cost_file`` gets its result)."""
        jobs = []
        for name in names:
            if not self.cost_file(name).is_file():
                method = self.methods[name]
                command = [sys.executable, "-m", "nnunetv2_mamba.comparison.cost", self.trained_as[name],
                           str(self.plans_of(name)), str(self.preprocessed / "dataset.json"), method.configuration,
                           DEVICE, str(self.cost_file(name))]
                key = job_key("cost", _flat(name))
                jobs.append(device_job(key, command, self.config.device, executor, self.env, job_log(self.logs, key)))
        return jobs

    def cost_file(self, name: str) -> Path:
        return self.report_dir / "costs" / f"{self.methods[name].folder_name(self.trained_as[name])}.json"

    def finished_runs(self) -> dict[str, list[FoldRun]]:
        return {name: [r for r in runs if r.is_finished(self.config.ensembles)] for name, runs in self.runs.items()}

    def unfinished_runs(self) -> list[FoldRun]:
        """Every seed's runs that have not finished."""
        return [r for by_seed in self.seed_runs.values() for runs in by_seed.values() for r in runs
                if not r.is_finished(self.config.ensembles)]


def run_benchmark(config: BenchmarkConfig, paths: NnUNetPaths) -> Path | None:
    """Plan what is missing, train (resumably, through the executor), select and ensemble, predict, evaluate and
    write the report; returns the path of report.md (None after ``wait=False``, which only submits). With
    ``report_only`` nothing is planned, trained or predicted: what has finished is scored and reported. Runs that
    failed are reported (with their logs) after the report is written."""
    bench = Benchmark(config, paths)
    bench.check_inputs()
    executor = make_executor(config.executor, bench.report_dir / "jobs", config.executor_settings)
    if config.report_only:
        executor = ReportOnlyExecutor(executor)
    if config.device == "cpu":
        for variable, value in cpu_settings(bench.env).items():
            print(f"[benchmark] on CPU: {variable}={value} ({CPU_SETTINGS[variable][1]})", flush=True)
    if executor.submits:
        bench.prepare_plans()
    outcomes = executor.run(bench.training_jobs(executor), wait=config.wait)
    if executor.submits and not config.wait:
        for outcome in outcomes.values():
            print(f"[benchmark] {outcome.key}: {outcome.state}"
                  + (f" (job {outcome.job_id})" if outcome.job_id else ""), flush=True)
        print("[benchmark] submitted; run the same command again to wait for them and go on (or with "
              "--report-only to report what has finished)", flush=True)
        return None
    failed_runs = {key: o for key, o in outcomes.items() if o.state == "failed"}
    if not any(bench.finished_runs().values()) and failed_runs:
        raise SystemExit("\n".join(["no run has finished:"] + [f"{key} failed (log: {o.log_file}):\n{o.error}"
                                                                for key, o in failed_runs.items()]))
    results = collect_results(bench, executor)
    results["missing_runs"] = {run.key: _state(outcomes.get(run.key)) for run in bench.unfinished_runs()}
    failures = {**failed_runs, **results.pop("failed_jobs")}
    results["failures"] = {key: {"log": str(o.log_file), "error": o.error} for key, o in failures.items()}
    save_results(results, bench.report_dir)
    report = write_report(bench.report_dir)
    if failures:
        raise SystemExit("\n".join([f"report (without the failed runs): {report}"] +
                                   [f"{key} failed (log: {o.log_file}):\n{o.error}" for key, o in failures.items()]
                                   + ["Run the same command again: finished runs are kept, failed ones continue."]))
    return report


def _state(outcome) -> str:
    """A run's job state for the report: its executor's, or "not submitted"."""
    return NOT_SUBMITTED if outcome is None or outcome.error == NOT_SUBMITTED else outcome.state


def collect_results(bench: Benchmark, executor) -> dict:
    """The content of results.json, stage by stage (cost, score, select, predict), with ``failed_jobs``
    ({key: Outcome}) of the jobs that failed. Every command is a job of ``executor`` (one that never submits, for
    ``--report-only``, leaves only what exists)."""
    config = bench.config
    scored = {name: runs for name, runs in bench.finished_runs().items() if runs}
    if not scored:
        raise SystemExit("no run has finished yet: " + "; ".join(
            f"{r.key} {r.status(config.ensembles)}" for r in bench.unfinished_runs()))
    costs, failed = cost_stage(bench, executor, scored)
    results = {"dataset": bench.dataset, "dataset_id": config.dataset_id, "configuration": config.configuration,
               "folds": config.folds, "device": config.device, "costs": costs,
               "trained_as": {n: bench.trained_as[n] for n in scored},
               "methods": {n: method_record(bench, n) for n in bench.methods if n in scored}, "seeds": config.seeds,
               "fold_of_case": _fold_of_case(bench.preprocessed, config.folds), **score_stage(bench, scored)}
    results["repeats"] = repeats_stage(bench, results["splits"]["validation"])
    for name, folds in results["curves"].items():
        costs[name]["train_seconds_per_iteration"] = _mean([c["seconds_per_iteration"] for c in folds.values()])
    selection = select_stage(bench, executor, scored, results["splits"]["validation"])
    if config.test_images is not None:
        test, overlays, failed_predictions = predict_stage(bench, executor, scored, selection, costs)
        failed.update(failed_predictions)
        if test:
            results["splits"]["test"], results["overlay_sources"]["test"] = test, overlays
    results["failed_jobs"] = failed
    return results if selection is None else {**results, "selection": selection}  # null would load back as NaN


def cost_stage(bench: Benchmark, executor, scored: dict) -> tuple[dict, dict]:
    """({method: cost}, {key: failed Outcome}): each method's cost, measured by a job where it is missing."""
    failed = {k: o for k, o in executor.run(bench.cost_jobs(executor, list(scored))).items() if o.state == "failed"}
    costs = {name: json.loads(bench.cost_file(name).read_text()) if bench.cost_file(name).is_file() else {}
             for name in scored}
    return costs, failed


def score_stage(bench: Benchmark, scored: dict) -> dict:
    """{"splits": {"validation"}, "overlay_sources", "curves", "where", "cpu_settings"}: every finished run's
    validation scored (a method's folds pooled), its training log and where its job ran."""
    dataset_json = bench.dataset_json()
    references = bench.preprocessed / "gt_segmentations"
    validation, curves, where = {}, {}, {}
    overlays = {"images": str(bench.paths.raw / bench.dataset / "imagesTr"), "references": str(references),
                "predictions": {}, "file_ending": dataset_json["file_ending"]}
    for name, runs in scored.items():
        cases = {}
        for run in runs:
            scores = evaluate_folder(references, run.validation_folder, dataset_json)
            cases.update(scores["cases"])
        validation[name] = _merged(scores, cases)
        overlays["predictions"][name] = [str(r.validation_folder) for r in runs]
        curves[name] = {str(r.fold): read_training_log(r) for r in runs}
        where[name] = {str(r.fold): read_where(where_file(bench.train_log(r))) for r in runs}
    return {"splits": {"validation": validation}, "overlay_sources": {"validation": overlays}, "curves": curves,
            "where": where, "cpu_settings": _cpu_settings(where)}


def select_stage(bench: Benchmark, executor, scored: dict, validation: dict) -> dict | None:
    """nnU-Net's selection (``select_and_ensemble``) once every fold of two or more methods has finished, its
    ensembles' validation rows added to ``validation``; None otherwise (and said why under ``--ensembles``)."""
    config = bench.config
    complete = len(scored) == len(bench.runs) and all(len(r) == len(config.folds) for r in scored.values())
    if not config.ensembles:
        return None
    if not (complete and len(scored) > 1):
        print("[benchmark] --ensembles: nnU-Net's model selection needs every fold of two or more methods; not run "
              f"while {', '.join(r.key for r in bench.unfinished_runs()) or 'one method is compared'}", flush=True)
        return None
    selection = select_and_ensemble(bench, executor)
    for key, folder in (selection or {}).get("ensemble_folders", {}).items():
        validation[key] = evaluate_folder(bench.preprocessed / "gt_segmentations", folder, bench.dataset_json())
    return selection


def predict_stage(bench: Benchmark, executor, scored: dict, selection: dict | None,
                  costs: dict) -> tuple[dict, dict, dict]:
    """(test split, its overlay sources, {key: failed Outcome}): the test folder predicted by each method (and by
    nnU-Net's choice), as jobs where missing, scored; each method's inference time added to ``costs``."""
    config, dataset_json = bench.config, bench.dataset_json()
    ending = dataset_json["file_ending"]
    cases = test_cases(config.test_images, ending)
    outputs = {name: bench.report_dir / "test_predictions" / _flat(name) for name in scored}
    keys = {name: job_key("predict", _flat(name)) for name in scored}
    jobs = [prediction_job(keys[name], config.dataset_id, bench.methods[name].model(bench.trained_as[name]),
                           [r.fold for r in scored[name]], config.test_images, output, config.device, executor,
                           bench.env, job_log(bench.logs, keys[name]), config.disable_tta)
            for name, output in outputs.items() if not is_predicted(output, cases, ending)]
    failed = {k: o for k, o in executor.run(jobs).items() if o.state == "failed"} if jobs else {}
    test, overlays = {}, {"images": str(config.test_images), "references": str(config.test_labels),
                          "predictions": {}, "file_ending": ending}
    for name, output in outputs.items():
        if is_predicted(output, cases, ending):
            costs[name]["inference_seconds_per_case"] = prediction_timing(output, cases, ending)["seconds_per_case"]
            test[name] = evaluate_folder(config.test_labels, output, dataset_json)
            overlays["predictions"][name] = [str(output)]
    best = bench.report_dir / "test_predictions" / _flat(f"{BEST}: {selection['best']}") if selection else None
    if best is not None and (executor.submits or is_predicted(best / "postprocessed", cases, ending)):
        final = predict_best(config.dataset_id, bench.dataset_results, config.test_images, best, config.device,
                             bench.env, executor, config.disable_tta, replace=True)
        row = f"{BEST}: {selection['best']} (postprocessed)"
        test[row] = evaluate_folder(config.test_labels, final, dataset_json)
        overlays["predictions"][row] = [str(final)]
    return test, overlays, failed


def method_record(bench: Benchmark, name: str) -> dict:
    """What the report needs to know of a method: trainer, plans, configuration, whether it is ours, and for a scan
    control, the control and the compared method it controls (``control_of``)."""
    method = bench.methods[name]
    record = {"trainer": method.trainer, "plans": method.plans, "configuration": method.configuration,
              "ours": method.is_ours}
    parents = {m: n for n, m in bench.methods.items()}
    if method.scan_control:
        record["scan_control"] = method.scan_control
        if method.parent() in parents:
            record["control_of"] = parents[method.parent()]
    return record


def repeats_stage(bench: Benchmark, validation: dict) -> dict:
    """{method: {seed: {case: Dice, mean over classes}}} of the scored methods: the first seed's from its rows in
    ``validation``, every other seed's once all its folds have finished; empty without seeded repeats."""
    if len(bench.config.seeds) < 2:
        return {}
    repeats = {}
    for name in (n for n in bench.seed_runs if n in validation):
        repeats[name] = {}
        for seed, runs in bench.seed_runs[name].items():
            if runs is bench.runs[name]:
                cases = validation[name]["cases"]
            elif all(run.is_finished(bench.config.ensembles) for run in runs):
                cases = {case: scores for run in runs for case, scores in
                         evaluate_folder(bench.preprocessed / "gt_segmentations", run.validation_folder,
                                         bench.dataset_json())["cases"].items()}
            else:
                continue
            repeats[name][str(seed)] = {case: scores[CLASS_MEAN]["Dice"] for case, scores in cases.items()}
    return repeats


def select_and_ensemble(bench: Benchmark, executor) -> dict | None:
    """nnU-Net's ``find_best_configuration`` over the compared runs (``ensembles``): its per-candidate Dice, its
    choice, the postprocessed Dice and its inference instructions, with nnU-Net's names mapped to the report's.
    nnU-Net's saved selection is reused when it covers these models and folds and is newer than every run's
    validation; None when there is none (``--report-only`` runs nothing)."""
    names = {bench.methods[n].folder_name(bench.trained_as[n]): n for n in bench.methods}
    if not _selection_is_current(bench, set(names)):
        _run_find_best(bench, executor, list(names))
        if not _selection_is_current(bench, set(names)):
            return None
    selection = ensembles.read_selection(bench.dataset_results)

    def report_name(key: str) -> str:
        members = ensemble_members(key)
        return "ensemble: " + " + ".join(names[m.identifier] for m in members) if members else names[key]

    best = selection["best_model_or_ensemble"]
    chosen = ensembles.selected_identifiers(selection)
    best_name = names[chosen[0]] if len(chosen) == 1 else "ensemble: " + " + ".join(names[m] for m in chosen)
    return {"candidates": {report_name(k): v for k, v in selection["all_results"].items()},
            "best": best_name, "dice_before_postprocessing": best["result_on_crossval_pre_pp"],
            "dice_after_postprocessing": best["result_on_crossval_post_pp"],
            "ensemble_folders": {report_name(k): str(ensembles.ensemble_folder(bench.dataset_results, k))
                                 for k in selection["all_results"] if ensemble_members(k)},
            "instructions": (bench.dataset_results / ensembles.INSTRUCTIONS).read_text()}


def _selection_is_current(bench: Benchmark, identifiers: set[str]) -> bool:
    """nnU-Net's saved selection covers exactly ``identifiers`` and the benchmark's folds, and was made after every
    one of their runs' validation."""
    information = bench.dataset_results / ensembles.INFERENCE_INFORMATION
    if not information.is_file():
        return False
    selection = ensembles.read_selection(bench.dataset_results)
    if ensembles.considered_identifiers(selection) != identifiers or list(selection["folds"]) != bench.config.folds:
        return False
    validated = [run.validation_folder / "summary.json" for runs in bench.runs.values() for run in runs]
    return all(v.is_file() and v.stat().st_mtime < information.stat().st_mtime for v in validated)


def _run_find_best(bench: Benchmark, executor, identifiers: list[str]) -> None:
    """nnU-Net's model selection and ensembling, a CPU job (``--report-only``: not run)."""
    command = ensembles.find_best_command(bench.config.dataset_id, bench.config.folds, identifiers)
    key = job_key("find_best_configuration")
    job = Job(key, tuple(command), bench.env, job_log(bench.logs, key))
    outcome = executor.run([job])[job.key]
    if executor.submits and outcome.state != "done":
        raise RuntimeError(f"nnU-Net's find_best_configuration failed (log: {job.log_file}):\n{outcome.error}")


def _cpu_settings(where: dict) -> dict[str, str]:
    """What the CPU settings changed in the trainings that ran on the CPU."""
    return {variable: value for folds in where.values() for record in folds.values() if record
            for variable, value in record["cpu_settings"].items()}


def _fold_count(preprocessed: Path) -> int:
    """Folds of nnU-Net's splits_final.json, or the 5 nnU-Net will make at the first training."""
    splits = preprocessed / "splits_final.json"
    return len(json.loads(splits.read_text())) if splits.is_file() else len(ALL_FOLDS)


def _fold_of_case(preprocessed: Path, folds: list[int]) -> dict[str, int]:
    """{validation case: its fold} over ``folds``, from splits_final.json (empty before any training made it)."""
    splits = preprocessed / "splits_final.json"
    if not splits.is_file():
        return {}
    return {case: fold for fold, split in enumerate(json.loads(splits.read_text())) if fold in folds
            for case in split["val"]}


def _flat(name: str) -> str:
    """A report name as a folder name and a job key's subject: ``ensemble: A + B`` as ``ensemble.A+B``."""
    return name.replace(": ", KEY_SEPARATOR).replace(" + ", "+").replace(" ", "_")


def _merged(template: dict, cases: dict) -> dict:
    """One metrics result over the cases of several folds."""
    from nnunetv2_mamba.evaluation.aggregate import aggregate

    return {**template, "prediction_dir": None, "cases": cases, "aggregate": aggregate(cases)}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
