"""Where and how big the jobs are: :class:`ExecutorSettings`, read from a TOML file and/or command-line flags
(flags override the file), and the flags themselves."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib

KINDS = ("inline", "local", "slurm")


class SettingsError(ValueError):
    """A settings file or flag that cannot be used."""


@dataclass(frozen=True)
class ExecutorSettings:
    """None means: the scheduler's default (SLURM's partition defaults; for `local`, max_parallel = the number of
    visible GPUs or 1 and no time limit). The TOML file uses these names as keys."""
    partition: str | None = None      # SLURM partition
    gpus: int | None = None           # GPUs per job that may use one (-device auto/cuda; default: 1 for cuda, 0 for auto)
    cpus: int | None = None           # CPUs per job (SLURM --cpus-per-task)
    mem_gb: float | None = None       # memory per job, GB (SLURM --mem)
    time_min: int | None = None       # time limit per job, minutes (SLURM --time; local: the job is stopped then)
    account: str | None = None        # SLURM --account
    extra: tuple[str, ...] = ()       # further #SBATCH options, e.g. ("--qos=high", "--constraint=a100")
    max_parallel: int | None = None   # local: jobs at once

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "extra":
                if not isinstance(value, tuple) or not all(isinstance(line, str) for line in value):
                    raise SettingsError(f"extra must be a list of '#SBATCH' options as strings, got {value!r}")
                sbatch_options(value)
            elif value is not None and not _fits(field.name, value):
                raise SettingsError(f"{field.name} = {value!r}: expected {_EXPECTED[field.name]}")

    @classmethod
    def from_file(cls, path: Path) -> "ExecutorSettings":
        try:
            values = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise SettingsError(f"executor settings {path}: {error}") from error
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise SettingsError(f"executor settings {path}: unknown key(s) {', '.join(unknown)}; "
                                f"known: {', '.join(f.name for f in dataclasses.fields(cls))}")
        if isinstance(values.get("extra"), list):
            values["extra"] = tuple(values["extra"])
        return cls(**values)


_EXPECTED = {"partition": "a string", "account": "a string", "gpus": "an integer >= 0", "cpus": "an integer >= 1",
             "time_min": "an integer >= 1", "max_parallel": "an integer >= 1", "mem_gb": "a number > 0"}


def _fits(name: str, value) -> bool:
    if name in ("partition", "account"):
        return isinstance(value, str) and bool(value)
    if name == "mem_gb":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return isinstance(value, int) and not isinstance(value, bool) and value >= (0 if name == "gpus" else 1)


def sbatch_options(lines) -> dict[str, str | bool]:
    """{'qos': 'high', 'exclusive': True} from ('--qos=high', '#SBATCH --exclusive'), as submitit takes them."""
    options = {}
    for line in lines:
        option = line.removeprefix("#SBATCH").strip()
        name, has_value, value = option.partition("=")
        if not name.startswith("--") or len(name) < 3 or " " in name:
            raise SettingsError(f"sbatch option {line!r}: write it as '--name=value' or '--flag'")
        options[name[2:]] = value if has_value else True
    return options


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """The executor's flags (see docs/cluster.md)."""
    group = parser.add_argument_group("where the jobs run (docs/cluster.md)")
    group.add_argument("--executor", choices=KINDS, default="inline",
                       help="inline: one after the other in this process (default); local: in parallel on this "
                            "machine, one per GPU; slurm: one SLURM job each")
    group.add_argument("--no-wait", action="store_true",
                       help="submit and return; rerun the same command later to collect (and resubmit failures)")
    group.add_argument("--executor-settings", type=Path, metavar="FILE",
                       help="TOML file with partition, gpus, cpus, mem_gb, time_min, account, extra, max_parallel "
                            "(flags override it)")
    group.add_argument("--slurm-partition", dest="executor_partition", metavar="NAME",
                       help="SLURM partition (checked with sinfo before submitting)")
    group.add_argument("--slurm-gpus", dest="executor_gpus", type=int, metavar="N", help="GPUs per job that may use one (every job but CPU ones such as nnU-Net's model selection): "
                            "with -device auto the job runs on CUDA when it asked for a GPU, on the CPU otherwise; "
                            "default 1 with -device cuda, 0 with auto")
    group.add_argument("--slurm-cpus", dest="executor_cpus", type=int, metavar="N", help="CPUs per job")
    group.add_argument("--slurm-mem-gb", dest="executor_mem_gb", type=float, metavar="GB", help="memory per job")
    group.add_argument("--slurm-time-min", dest="executor_time_min", type=int, metavar="MIN", help="time limit per job")
    group.add_argument("--slurm-account", dest="executor_account", metavar="NAME", help="SLURM account to charge")
    group.add_argument("--slurm-extra", dest="executor_extra", action="append", metavar="OPTION",
                       help="an #SBATCH option such as --qos=high (repeatable; replaces the file's list)")
    group.add_argument("--max-parallel", dest="executor_max_parallel", type=int, metavar="N",
                       help="local: jobs at once (default: one per visible GPU, else 1)")


def settings_from_arguments(args: argparse.Namespace) -> ExecutorSettings:
    """The settings file (if any) with the flags that were given laid over it."""
    base = ExecutorSettings.from_file(args.executor_settings) if args.executor_settings else ExecutorSettings()
    flags = {field.name: getattr(args, f"executor_{field.name}") for field in dataclasses.fields(ExecutorSettings)
             if getattr(args, f"executor_{field.name}") is not None}
    if "extra" in flags:
        flags["extra"] = tuple(flags["extra"])
    return dataclasses.replace(base, **flags)
