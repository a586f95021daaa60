"""The ``restbench`` command line: parses options, calls the core, prints with rich.

Errors a user can fix (restbench.api.PluginError, click usage errors) end in one line and a
non-zero exit, never a traceback (``RESTBENCH_DEBUG=1`` shows it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from restbench import __version__
from restbench.errors import did_you_mean
from restbench.plugins.contract import KINDS, PluginError, UsageError
from restbench.plugins.options import options_of, parse_value
from restbench.plugins.registry import get_registry
from restbench.run import profiles

console = Console()
err_console = Console(stderr=True)

LIST_KINDS = KINDS + ("profiles",)


def _cache_dir() -> Path:
    from restbench.data.cache import default_cache_dir

    return default_cache_dir()


def _emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def _key_values(pairs: tuple[str, ...], option: str) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"{option}: expected key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


class _Group(click.Group):
    """A command group whose command list gives each command's whole first sentence, wrapped
    to the terminal, where click cuts it to one line with '...'."""

    group_class = type  # its subgroups (data, leaderboard) list their commands the same way

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, command.get_short_help_str(limit=10_000)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class _Choice(click.Choice):
    """A click choice whose wrong value is a one-line error naming the closest valid values."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            where = param.opts[0] if isinstance(param, click.Option) else (param.human_readable_name if param else "value")
            raise UsageError(f"{where}: unknown value '{value}'{did_you_mean(value, self.choices)}; "
                             f"valid: {', '.join(self.choices)}") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="restbench")
def cli() -> None:
    """restbench: noise-robust and efficient sleep-staging benchmarks (REST and beyond)."""


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_cmd(as_json: bool) -> None:
    """List installed plugins: name, version, distribution, hooks, status."""
    registry = get_registry()
    rows = [p.to_dict() for p in registry.plugins]
    if as_json:
        _emit_json(rows)
        return
    table = Table(title="restbench plugins")
    table.add_column("name", no_wrap=True)  # never cut: it is what RESTBENCH_PLUGINS_BLOCK/ALLOW take
    for col in ("distribution", "version", "registers", "status"):  # registers: its register_* hooks
        table.add_column(col, overflow="fold")
    for p in rows:
        status = p["status"] if p["status"] != "failed" else f"[red]failed[/red]: {p['error']}"
        hooks = ", ".join(h.removeprefix("register_") for h in p["hooks"])
        table.add_row(p["name"], p["distribution"] or "", p["version"] or "", hooks, status)
    console.print(table)


def _describe(kind: str, obj) -> dict:
    row = {"id": obj.id, "version": obj.version, "description": obj.description, "citation": obj.citation}
    if kind == "corruptions":
        row["suite"] = obj.suite
        row["needs_model"] = obj.needs_model
        row["severities"] = [{"level": s.level, "name": s.name, "value": s.value, "unit": s.unit} for s in obj.severities]
    owner = get_registry().owner_of(kind, obj.id)
    row["plugin"] = owner.name if owner else None
    row["distribution"] = owner.distribution if owner else None
    row["default"] = getattr(obj, "default", False) is True
    row["options"] = [o.to_dict() for o in options_of(obj)]
    return row


#: Terminal cells the help column of an options table should get at least.
_HELP_WIDTH = 30


def _options_table(title: str, options: list[dict]) -> Table:
    """One row per option. Where the six columns leave the help under ``_HELP_WIDTH`` cells,
    type, default, per-profile defaults and the paper's value share one column, a line each."""
    from rich.cells import cell_len

    rows = []
    for o in options:
        per_profile = [f"{k}: {json.dumps(v)}" for k, v in o["profiles"].items()]
        paper = json.dumps(o["paper"]) if o["in_paper"] else "-"
        bounds = [f">= {o['minimum']:g}" if o["minimum"] is not None else "", f"<= {o['maximum']:g}" if o["maximum"] is not None else ""]
        if o["choices"]:
            bounds.append("one of " + ", ".join(json.dumps(c) for c in o["choices"]))
        extra = "; ".join(b for b in bounds if b)
        rows.append((o["name"], o["type"], json.dumps(o["default"]), per_profile, paper,
                     o["help"] + (f" ({extra})" if extra else "")))
    columns = ("option", "type", "default", "per profile", "paper")
    widths = [max([cell_len(col)] + [cell_len(r[i] if i != 3 else ", ".join(r[3])) for r in rows]) for i, col in enumerate(columns)]
    table = Table(title=title)
    table.add_column("option", no_wrap=True)  # never cut: it is what --set takes
    if sum(widths) + 3 * (len(columns) + 1) + 1 + _HELP_WIDTH <= console.width:
        for col in columns[1:]:
            table.add_column(col, overflow="fold")
        table.add_column("help", overflow="fold")
        for name, kind, default, per_profile, paper, help_text in rows:
            table.add_row(name, kind, default, ", ".join(per_profile), paper, help_text)
    else:
        cells = ["\n".join([kind, f"default: {default}", *per_profile, f"paper: {paper}"])
                 for _, kind, default, per_profile, paper, _ in rows]
        longest = max([cell_len(line) for cell in cells for line in cell.splitlines()] + [len("values")])
        table.add_column("type and values", overflow="fold", max_width=longest)
        table.add_column("help", overflow="fold")
        for (name, *_, help_text), values in zip(rows, cells):
            table.add_row(name, values, help_text)
    return table


@cli.command("list")
@click.argument("kind", type=_Choice(LIST_KINDS), metavar="KIND")
@click.option("--options", "show_options", is_flag=True, help="Also show each object's options (set with --set ID.NAME=VALUE).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(kind: str, show_options: bool, as_json: bool) -> None:
    """List every registered object of KIND (or the run profiles and core knobs).

    KIND is one of: datasets, models, methods, corruptions, compressors, exporters, runners,
    profiles."""
    if kind == "profiles":
        core = [o.to_dict() for o in profiles.CORE_OPTIONS]
        if as_json:
            _emit_json({"profiles": [{"id": name, "description": text, "default": name == profiles.DEFAULT_PROFILE}
                                     for name, text in profiles.PROFILES.items()], "knobs": core})
            return
        for name, text in profiles.PROFILES.items():
            console.print(f"[bold]{name}[/bold]{' (default)' if name == profiles.DEFAULT_PROFILE else ''}: {text}")
        console.print(_options_table("core knobs (override with --set KNOB=VALUE)", core))
        return
    rows = [_describe(kind, obj) for obj in get_registry().all(kind).values()]
    if as_json:
        _emit_json(rows)
        return
    table = Table(title=f"restbench {kind}")
    table.add_column("id", no_wrap=True)
    for col in ("version", "description") + (("severities",) if kind == "corruptions" else ()):
        table.add_column(col, overflow="fold")
    for row in rows:
        extra = ()
        if kind == "corruptions":  # a line per severity
            extra = ("\n".join(f"{s['name']}={s['value']:g} {s['unit']}" for s in row["severities"]),)
        table.add_row(row["id"] + (" (default)" if row["default"] else ""), row["version"], row["description"], *extra)
    console.print(table)
    if show_options:
        for row in rows:
            if row["options"]:
                console.print(_options_table(f"{row['id']} options (--set {row['id']}.NAME=VALUE)", row["options"]))
            else:
                console.print(f"{row['id']}: no options")


@cli.command("run")
@click.option("--dataset", default=None, help="Dataset id (restbench list datasets; default: the one marked default).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Local dataset files.")
@click.option("--protocol", help="Dataset protocol, e.g. paper, sleep-edf-20, sleep-edf-78.")
@click.option("--dataset-option", multiple=True, metavar="KEY=VALUE", help="Dataset option (repeatable; same as --set DATASET.KEY=VALUE).")
@click.option("--eval-dataset", "eval_datasets", multiple=True, metavar="ID[,KEY=VALUE...]",
              help="Also evaluate every trained model on this dataset (repeatable): keys name, data_dir, protocol, "
                   "n_subjects, split (all|test; default all), any other is a dataset option, e.g. "
                   "edf-folder,data_dir=lab/,channel=C4-M1.")
@click.option("--model", default=None, help="Model id (default: the one marked default).")
@click.option("--methods", default="all", show_default=True,
              help="Comma-separated method ids, or 'all' (every method except those marked in_all = False).")
@click.option("--corruptions", default="all", show_default=True, help="Comma-separated corruption ids, or 'all'.")
@click.option("--runners", default=None, help="Comma-separated runner ids, or '' for none (default: those marked default).")
@click.option("--exporters", default=None, help="Comma-separated exporter ids, or '' for none (default: those marked default).")
@click.option("--profile", default=profiles.DEFAULT_PROFILE, show_default=True,
              type=_Choice(list(profiles.PROFILES)), help="Knob set (restbench list profiles).")
@click.option("--set", "sets", multiple=True, metavar="KNOB=VALUE",
              help="Set a core knob (epochs=10) or a plugin option (ID.NAME=VALUE); repeatable, JSON values. "
                   "See restbench list profiles / restbench list KIND --options.")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help='JSON file of knobs and plugin options, e.g. {"epochs": 10, "ID": {"NAME": 4}}.')
@click.option("--seeds", help="Comma-separated seeds (default: the profile's).")
@click.option("--name", default=None, help="Run name: writes runs/NAME (default: DATASET-PROFILE-TIMESTAMP).")
@click.option("--run-dir", type=click.Path(path_type=Path), help="Run directory (overrides --name).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=_cache_dir, show_default=".restbench-cache or $RESTBENCH_CACHE_DIR")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in the same run directory (same experiment only).")
@click.option("--allow-extend", is_flag=True, help="With --resume: also add methods, seeds, corruptions, exporters or runners.")
@click.option("--keep-going", is_flag=True, help="Record a failing plugin's method and seed as failed and continue the run.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable input files (listed in the results) instead of stopping.")
@click.option("--download", is_flag=True, help="Allow the dataset to download missing public files.")
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bars (default in CI).")
@click.option("--figures/--no-figures", default=True, show_default=True, envvar="RESTBENCH_FIGURES",
              help="Draw the run's figures into RUN_DIR/figures/ at the end (as restbench plot does); "
                   "RESTBENCH_FIGURES=0 makes --no-figures the default.")
@click.option("--jobs", "n_jobs", default="1", show_default=True,
              help="Worker processes for the run's jobs, each computing with the threads knob (same numbers "
                   "for any N); 'auto': cores / threads. With --executor ray, the local cluster's size.")
@click.option("--executor", default="local", show_default=True, type=_Choice(["local", "ray"]),
              help="Where jobs run: local (this process, or a pool with --jobs N) or ray (restbench[ray]).")
@click.option("--address", "ray_address", default=None,
              help="With --executor ray: an existing cluster's address (default: start a local one on 127.0.0.1).")
@click.option("--store", "store_dir", type=click.Path(path_type=Path), default=None,
              help="Job store shared by runs and sweeps (default: $RESTBENCH_STORE or CACHE_DIR/store).")
@click.option("--no-store", is_flag=True, help="Share nothing: compute every job, keep them only in this run.")
@click.option("--from-sweep", "from_sweep_dir", type=click.Path(path_type=Path), default=None,
              help="Take the options a restbench sweep chose (its --out folder); --set still overrides them.")
def run_cmd(dataset, data_dir, protocol, dataset_option, eval_datasets, model, methods, corruptions, runners, exporters, profile, sets,
            config_file, seeds, name, run_dir, cache_dir, resume, allow_extend, keep_going, skip_bad, download,
            quiet, figures, n_jobs, executor, ray_address, store_dir, no_store, from_sweep_dir) -> None:
    """Train, compress, evaluate and measure METHODS on a dataset; write a run directory."""
    from restbench.records.rundir import check_run_name
    from restbench.report.terminal import print_summary
    from restbench.benchmark import run
    from restbench.run.eval_sets import EvalSetRequest
    from restbench.run.plan import RunRequest
    from restbench.run.progress import quiet_by_default

    try:
        seed_list = [int(s) for s in seeds.split(",")] if seeds else None
    except ValueError:
        raise UsageError(f"--seeds: expected comma-separated integers, got '{seeds}'") from None
    if seed_list is not None and (min(seed_list) < 0 or len(set(seed_list)) != len(seed_list)):
        raise UsageError(f"--seeds: expected distinct non-negative integers, got '{seeds}'")
    # A fresh directory per run unless named, so a second run never collides with the first.
    if allow_extend and not resume:
        raise UsageError("--allow-extend: only with --resume")
    if name is not None:
        try:
            check_run_name(name)
        except PluginError as exc:
            raise UsageError(f"--name: {exc}; it names a folder under runs/ (use --run-dir for another place)") from None
    run_dir = run_dir or Path("runs") / (name or f"{dataset or 'default'}-{profile}-{time.strftime('%Y%m%d-%H%M%S')}")
    if no_store and store_dir is not None:
        raise UsageError("--store and --no-store: choose one")
    overrides = _key_values(sets, "--set")
    if from_sweep_dir is not None:
        from restbench.studies.sweep import from_sweep

        overrides = {**from_sweep(from_sweep_dir), **overrides}
    request = RunRequest(
        dataset=dataset, model=model, methods=methods, corruptions=corruptions,
        runners=_id_list(runners), exporters=_id_list(exporters),
        profile=profile, overrides=overrides, config_file=config_file, seeds=seed_list,
        data_dir=data_dir, cache_dir=cache_dir, protocol=protocol,
        dataset_options=_key_values(dataset_option, "--dataset-option"), skip_bad=skip_bad,
        allow_download=download, run_dir=run_dir, resume=resume, allow_extend=allow_extend, keep_going=keep_going,
        quiet=quiet_by_default() if quiet is None else quiet, jobs=_jobs(n_jobs), executor=executor,
        ray_address=ray_address, store=store_dir, use_store=not no_store,
        eval_sets=[EvalSetRequest.parse(spec) for spec in eval_datasets],
    )
    result = run(request, console=err_console)
    print_summary(result.tables, console)
    if result.jobs:
        console.print(result.jobs, highlight=False, soft_wrap=True)
    if figures:
        _draw_figures(result.run_dir.path)
    console.print(f"run directory: {result.run_dir.path}")


def _draw_figures(run_dir: Path) -> None:
    """A finished run's figures (restbench plot); a missing matplotlib or a drawing failure is a
    warning: the results are written and the figures can be drawn again with restbench plot."""
    from restbench.report.plots import plotting_available
    from restbench.report.run_figures import write_run_figures

    ok, why = plotting_available()
    if not ok:
        console.print(f"figures not drawn: {why}", highlight=False, soft_wrap=True)
        return
    try:
        paths = write_run_figures(run_dir)
    except Exception as exc:
        if os.environ.get("RESTBENCH_DEBUG"):
            raise
        from rich.markup import escape

        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        console.print(f"[yellow]warning[/yellow]: figures not drawn ({type(exc).__name__}: {escape(first)}); "
                      f"retry with restbench plot {escape(str(run_dir))}", highlight=False, soft_wrap=True)
        return
    for path in paths:
        click.echo(f"figure: {path}")  # plain echo: rich would wrap long paths over lines


def _jobs(text: str) -> int | str:
    """``--jobs``: a positive number of workers, or ``auto``."""
    if text.strip() == "auto":
        return "auto"
    try:
        jobs = int(text)
    except ValueError:
        raise UsageError(f"--jobs: expected a positive number of workers or auto, got '{text}'") from None
    if jobs < 1:
        raise UsageError(f"--jobs: expected a positive number of workers or auto, got '{text}'")
    return jobs


def _id_list(text: str | None) -> list[str] | None:
    """A comma-separated id list; '' selects none, an absent option the defaults (None)."""
    if text is None:
        return None
    return [i.strip() for i in text.split(",") if i.strip()]


@cli.group("data")
def data_group() -> None:
    """Inspect datasets."""


def _prepare_dataset(dataset_id: str, data_dir: Path | None, protocol: str | None, n_subjects: int | None,
                     dataset_option: tuple[str, ...], cache_dir: Path, skip_bad: bool, *, where: str = "DATASET_ID",
                     suffix: str = ""):
    """The dataset ``dataset_id`` prepared as ``restbench data`` commands load it (its options
    checked); ``where`` names the argument and ``suffix`` the options (``-a``) in one-line errors."""
    from restbench.plugins.contract import DatasetOptions
    from restbench.plugins.options import resolve_options

    ds = get_registry().get("datasets", dataset_id, where)
    option = f"--dataset-option{suffix}"
    given = {k: (option, v) for k, v in _key_values(dataset_option, option).items()}
    extra = resolve_options(options_of(ds), None, given, ds.id)
    try:
        return ds.prepare(DatasetOptions(data_dir=data_dir, cache_dir=cache_dir, protocol=protocol,
                                         n_subjects=n_subjects, skip_bad=skip_bad, extra=extra))
    except PluginError as exc:
        if not suffix:
            raise
        # the dataset names its own options (--data-dir); say which side's they are here
        kind = UsageError if isinstance(exc, UsageError) else PluginError
        raise kind(f"{where}: {exc} (here: --data-dir{suffix}, --protocol{suffix}, {option})") from None


@data_group.command("info")
@click.argument("dataset_id")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--protocol")
@click.option("--n-subjects", type=int)
@click.option("--dataset-option", multiple=True, metavar="KEY=VALUE")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=_cache_dir, show_default=".restbench-cache or $RESTBENCH_CACHE_DIR")
@click.option("--skip-bad", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def data_info(dataset_id, data_dir, protocol, n_subjects, dataset_option, cache_dir, skip_bad, as_json) -> None:
    """Windows per stage per split (the paper's Table 1 shape), each stage's median amplitude in
    the training split, and every corruption level in uV and relative to that amplitude."""
    from restbench.data.scale import data_scale, measured_levels
    from restbench.plugins.contract import STAGES

    data = _prepare_dataset(dataset_id, data_dir, protocol, n_subjects, dataset_option, cache_dir, skip_bad)
    counts = data.stage_counts()
    levels = [(f"{cid} {sev.name}", sev.value, sev.unit)
              for cid, corruption in sorted(get_registry().all("corruptions").items())
              for sev in getattr(corruption, "severities", ())]
    scale = data_scale(data, levels)
    scale["measured"] = measured_levels(data, [c for _, c in sorted(get_registry().all("corruptions").items())])
    if as_json:
        _emit_json({"dataset": dataset_id, "fingerprint": data.fingerprint, "sfreq": data.sfreq,
                    "n_times": data.n_times, "split": data.split, "stage_counts": counts,
                    "stats": data.stats.to_dict(), "scale": scale, "skipped": data.info.get("skipped", [])})
        return
    table = Table(title=f"{dataset_id}: windows per stage ({data.sfreq:g} Hz, {data.n_times} samples per window)")
    table.add_column("split")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    table.add_column("total", justify="right")
    table.add_column("subjects", justify="right")
    for split, row in counts.items():
        n_subj = len(data.split[split]) if split in data.split else sum(len(v) for v in data.split.values())
        table.add_row(split, *[f"{row[s]:,}" for s in STAGES], f"{sum(row.values()):,}", str(n_subj))
    console.print(table)

    def pct(value):
        return "–" if value is None else f"{100 * value:.0f} %"

    rms = scale["stage_rms_uv"]
    noise = Table(title=f"Noise levels against the training split's amplitude (sigma_train {scale['sigma_train_uv']:.1f} uV)")
    noise.add_column("level")
    noise.add_column("uV", justify="right")
    for stage in STAGES:
        noise.add_column(stage, justify="right")
    noise.add_row("median epoch RMS (uV)", "", *["–" if rms[s] is None else f"{rms[s]:.1f}" for s in STAGES])
    for level in scale["levels"]:
        if level["uv"] is not None:
            noise.add_row(f"{level['label']} ({level['kind']})", f"{level['uv']:.1f}",
                          *[pct(level["of_stage_rms"][s]) for s in STAGES])
    console.print(noise)
    console.print("Per stage: the level in uV as a % of that stage's median 30-s epoch RMS (mean removed). "
                  "An L-inf radius moves every sample by at most that much; a noise std is the noise's RMS.")
    added = Table(title="What each model-free level adds to training windows: RMS of the change as % of the "
                        "stage's RMS / its 15-30 Hz power as a multiple of the stage's own")
    added.add_column("level")
    for stage in STAGES:
        added.add_column(stage, justify="right")
    for level in scale["measured"]:
        added.add_row(level["label"], *[f"{100 * level['of_stage_rms'][s]:.0f}% {level['beta_power_ratio'][s]:.1f}x"
                                        if level["of_stage_rms"].get(s) is not None else "–" for s in STAGES])
    console.print(added)
    console.print("Broadband noise (Gaussian, shot) fills the beta band that separates wake from sleep: where it "
                  "adds several times a stage's own beta power, a model reading beta sees wake.")
    for item in data.info.get("skipped", []):
        console.print(f"[yellow]skipped[/yellow] {item.get('file')}: {item.get('reason')}")


_SIDE_OPTIONS = [
    click.option(f"--data-dir-{side}", f"data_dir_{side}", type=click.Path(path_type=Path),
                 help=f"Local files of DATASET_{side.upper()}.")
    for side in "ab"
] + [click.option(f"--protocol-{side}", f"protocol_{side}", help=f"Protocol of DATASET_{side.upper()}.") for side in "ab"] + [
    click.option(f"--dataset-option-{side}", f"dataset_option_{side}", multiple=True, metavar="KEY=VALUE",
                 help=f"Option of DATASET_{side.upper()} (repeatable).")
    for side in "ab"
]


def _side_options(command):
    for option in reversed(_SIDE_OPTIONS):
        command = option(command)
    return command


@data_group.command("compare")
@click.argument("dataset_a")
@click.argument("dataset_b")
@_side_options
@click.option("--n-subjects", type=int, help="Subjects to load from each dataset (default: all).")
@click.option("--split", type=_Choice(["all", "train", "val", "test"]), default="all", show_default=True,
              help="Whose scored epochs are measured (all: every split's).")
@click.option("--stager", default=None, metavar="METHOD_ID",
              help="Also score each dataset with this pretrained reference method's clean macro-F1 (e.g. yasa).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=_cache_dir, show_default=".restbench-cache or $RESTBENCH_CACHE_DIR")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable input files instead of stopping.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the comparison as Markdown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def data_compare(dataset_a, dataset_b, data_dir_a, data_dir_b, protocol_a, protocol_b, dataset_option_a,
                 dataset_option_b, n_subjects, split, stager, cache_dir, skip_bad, out, as_json) -> None:
    """Two datasets side by side per stage: median epoch RMS and relative band power (delta, theta,
    alpha, sigma, beta), and with --stager a pretrained stager's macro-F1 on each (docs/REALISM.md)."""
    from restbench.data.compare import (
        BANDS_HZ,
        compare_profiles,
        markdown,
        stage_profile,
    )
    from restbench.plugins.contract import STAGES

    loaded = {side: _prepare_dataset(dataset_id, data_dir, protocol, n_subjects, options, cache_dir, skip_bad,
                                     where=f"DATASET_{side.upper()}", suffix=f"-{side}")
              for side, dataset_id, data_dir, protocol, options in
              (("a", dataset_a, data_dir_a, protocol_a, dataset_option_a),
               ("b", dataset_b, data_dir_b, protocol_b, dataset_option_b))}
    comparison = compare_profiles(*(stage_profile(loaded[side], split) for side in "ab"))
    for side, dataset_id in (("a", dataset_a), ("b", dataset_b)):
        comparison[side]["dataset"] = dataset_id  # the id the user gave (a prepared dataset names itself)
    scores = None
    if stager is not None:
        from restbench.studies.realism import stager_score

        scores = {side: stager_score(loaded[side], stager, get_registry(), split, dataset_id)
                  for side, dataset_id in (("a", dataset_a), ("b", dataset_b))}
    if out is not None:
        from restbench.records.atomic import write_text_atomic

        write_text_atomic(out, markdown(comparison, scores))
    if as_json:
        _emit_json({**comparison, "stager": scores})
        return

    def num(value, fmt):
        return "–" if value is None else format(value, fmt)

    a, b = comparison["a"], comparison["b"]
    console.print(f"A = {dataset_a} ({a['sfreq']:g} Hz, {a['n_recordings']} recordings), "
                  f"B = {dataset_b} ({b['sfreq']:g} Hz, {b['n_recordings']} recordings); split: {split}")
    amp = Table(title="Median epoch RMS (uV), mean removed")
    for column in ("stage", "epochs A", "epochs B", "RMS A", "RMS B", "B / A"):
        amp.add_column(column, justify="left" if column == "stage" else "right")
    for stage in STAGES:
        row = comparison["stages"][stage]
        rms = row["rms_uv"]
        amp.add_row(stage, f"{row['n_epochs']['a']:,}", f"{row['n_epochs']['b']:,}", num(rms["a"], ".1f"),
                    num(rms["b"], ".1f"), num(rms["ratio_b_over_a"], ".2f"))
    console.print(amp)
    rel = Table(title="Relative band power: median share of 0.5-30 Hz power, A / B (Welch, 4-s segments)")
    rel.add_column("stage")
    for band, (lo, hi) in BANDS_HZ.items():
        rel.add_column(f"{band} {lo:g}-{hi:g} Hz", justify="right")
    for stage in STAGES:
        shares = comparison["stages"][stage]["relative_power"]
        rel.add_row(stage, *[f"{num(shares[band]['a'], '.2f')} / {num(shares[band]['b'], '.2f')}" for band in BANDS_HZ])
    console.print(rel)
    if scores:
        table = Table(title=f"Stager {stager} on the scored epochs ({split}): clean macro-F1, accuracy, F1 per stage")
        for column in ("", "windows", "macro-F1", "accuracy", *STAGES):
            table.add_column(column, justify="right")
        for side in "ab":
            score = scores[side]
            table.add_row(side.upper(), f"{score['n_windows']:,}", f"{score['macro_f1']:.3f}", f"{score['accuracy']:.3f}",
                          *[f"{score['per_class_f1'][s]:.2f}" for s in STAGES])
        console.print(table)
    for side in "ab":
        for item in loaded[side].info.get("skipped", []):
            console.print(f"[yellow]skipped[/yellow] ({side.upper()}) {item.get('file')}: {item.get('reason')}")

@cli.command("summary")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--write", "write", is_flag=True,
              help="Also (re)write RUN_DIR/summary.md and summary.csv (by default nothing is written).")
@click.option("--wide", is_flag=True,
              help="Print each table whole, however wide (by default a table wider than the terminal is split).")
def summary_cmd(run_dir: Path, write: bool, wide: bool) -> None:
    """Print a run's summary tables, rebuilt from its records. Only reads RUN_DIR (a run or a
    published leaderboard folder) unless --write is given."""
    from restbench.report.summary import read_summary, write_summary
    from restbench.report.terminal import print_summary

    if not (run_dir / "results.jsonl").exists():
        raise UsageError(f"RUN_DIR: {run_dir} has no results.jsonl; pass a directory written by 'restbench run'")
    if write:
        print_summary(write_summary(run_dir), console, wide=wide)
        console.print(f"wrote {run_dir / 'summary.md'} and {run_dir / 'summary.csv'}", highlight=False, soft_wrap=True)
    else:
        print_summary(read_summary(run_dir)[0], console, wide=wide)


@cli.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--method", "method", required=True, help="Method compared (its id in RUN_A).")
@click.option("--method-b", default=None, help="Its id in RUN_B, when it differs (default: --method).")
@click.option("--all-variants", is_flag=True, help="Compare every deployed variant (default: the PyTorch model).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Significance level of the paired tests that mark ties.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the comparison as Markdown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare_cmd(run_a: Path, run_b: Path, method: str, method_b: str | None, all_variants: bool, alpha: float,
                out: Path | None, as_json: bool) -> None:
    """Compare a method's macro-F1 in two runs of one protocol cell by cell, paired per (seed, test
    subject), with each side's MFLOPs and parameters: e.g. a compressor setting against the
    default (restbench compare runs/a runs/b --method rest-as)."""
    from restbench.records.atomic import write_text_atomic
    from restbench.report.compare import compare_runs, markdown

    kwargs = {"variant": None} if all_variants else {}  # default: the PyTorch model only
    result = compare_runs(run_a, run_b, method, method_b, alpha=alpha, **kwargs)
    if as_json:
        _emit_json(result.to_dict())
    else:
        click.echo(markdown(result), nl=False)
    if out is not None:
        write_text_atomic(out, markdown(result))


@cli.command("plot")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--noise", default=None,
              help="Corruption shown as 'under noise' in the confusion and hypnogram figures (default: the first of "
                   "Table 4).")
def plot_cmd(run_dir: Path, noise: str | None) -> None:
    """Draw RUN_DIR's figures into RUN_DIR/figures/ as PNG and SVG and print their paths: macro-F1
    vs severity per corruption, confusion matrices clean vs the highest noise severity, one test
    subject's hypnograms (expert vs each method, clean and noisy), robust macro-F1 vs MFLOPs and
    latency (Pareto front)."""
    from restbench.report.run_figures import write_run_figures

    for path in write_run_figures(run_dir, noise=noise):
        click.echo(str(path))


@cli.command("verify")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_cmd(run_dir: Path, as_json: bool) -> None:
    """Check a finished run against the SHA-256 digests in its run.json and re-validate its records.

    Prints one OK line, or one line per difference (modified, missing or unexpected artifacts,
    changed results, invalid records, duplicate cells) and exits 1; exit 2 when RUN_DIR is not
    a run directory.
    """
    from restbench.records.verify import verify

    report = verify(run_dir)
    if as_json:
        _emit_json(report.to_dict())
    elif report.ok:
        click.echo(report.summary())
    else:
        differences = report.differences()
        click.echo(f"FAILED {run_dir}: {len(differences)} difference{'s' if len(differences) != 1 else ''}")
        for line in differences:
            click.echo(f"  {line}")  # plain echo: rich would wrap long paths over lines
    if not report.ok:
        sys.exit(1)


@cli.command("reproduce")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Fresh directory for the re-evaluated run, kept with a reproduction.json (default: a temporary one, removed).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="The dataset's local files, as the run was given them.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=_cache_dir, show_default=".restbench-cache or $RESTBENCH_CACHE_DIR")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (every cell).")
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bars (default in CI).")
def reproduce_cmd(run_dir: Path, out: Path | None, data_dir, cache_dir, as_json: bool, quiet) -> None:
    """Re-evaluate a finished run from its checkpoints (nothing is trained) and compare every
    robustness cell with the recorded one.

    Prints one REPRODUCED line, or the differing cells and exits 1. Cells must be identical on
    the run's machine and software; elsewhere each keeps 99 % of its window predictions and its
    macro-F1 within 0.01. A missing or changed checkpoint, a missing plugin or another version, or
    other data is a one-line error."""
    from restbench.run.progress import quiet_by_default
    from restbench.studies.reproduce import reproduce

    result = reproduce(run_dir, out, data_dir=data_dir, cache_dir=cache_dir, console=err_console,
                       quiet=quiet_by_default() if quiet is None else quiet)
    if as_json:
        _emit_json(result.to_dict())
    else:
        _print_reproduction(result)
    if not result.ok:
        sys.exit(1)


@cli.command("evaluate")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--eval-dataset", "eval_datasets", multiple=True, required=True, metavar="ID[,KEY=VALUE...]",
              help="Dataset to evaluate the run's models on (repeatable), as in restbench run --eval-dataset.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="The run's own dataset files, as the run was given them.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=_cache_dir, show_default=".restbench-cache or $RESTBENCH_CACHE_DIR")
@click.option("--keep-going", is_flag=True, help="Record a failing method and seed as failed and continue.")
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bars (default in CI).")
def evaluate_cmd(run_dir: Path, eval_datasets, data_dir, cache_dir, keep_going, quiet) -> None:
    """Evaluate a finished run's trained models on more datasets, in place, under every corruption; nothing trains."""
    from restbench.benchmark import run
    from restbench.report.terminal import print_summary
    from restbench.run.eval_sets import EvalSetRequest
    from restbench.run.progress import quiet_by_default
    from restbench.studies.evaluate import evaluation_request

    request = evaluation_request(run_dir, [EvalSetRequest.parse(spec) for spec in eval_datasets], data_dir=data_dir,
                                 cache_dir=cache_dir, quiet=quiet_by_default() if quiet is None else quiet,
                                 keep_going=keep_going)
    result = run(request, console=err_console)
    print_summary(result.tables, console)
    console.print(f"run directory: {result.run_dir.path}")


def _print_reproduction(result) -> None:
    click.echo(result.summary())  # plain echo: rich would wrap long lines
    for cell in result.differing:
        click.echo(f"  {cell.describe()}")
    if result.out is not None:
        click.echo(f"reproduction: {result.out / 'reproduction.json'}")


@cli.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder for the exported files.")
@click.option("--exporters", default=None,
              help="Comma-separated exporter ids (default: those marked default; see restbench list exporters).")
@click.option("--int8/--no-int8", default=True, show_default=True,
              help="Also export an int8 model (exporters with a 'variants' option).")
@click.option("--calibration-dataset", default=None, help="Dataset id for int8 calibration (default: the checkpoint's).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=_cache_dir, show_default=".restbench-cache or $RESTBENCH_CACHE_DIR")
@click.option("--data-dir", type=click.Path(path_type=Path))
def export_cmd(checkpoint, out, exporters, int8, calibration_dataset, cache_dir, data_dir) -> None:
    """Export a trained checkpoint (from a run's artifacts/models) through the registered exporters
    (by default the ones marked default, e.g. tflite: fp32 and int8 .tflite graphs) and check each
    file against PyTorch; prints a JSON report."""
    from restbench.run.checkpoints import export_checkpoint

    report = export_checkpoint(checkpoint, out, int8=int8, calibration_dataset=calibration_dataset,
                               cache_dir=cache_dir, data_dir=data_dir, exporters=_id_list(exporters))
    _emit_json(report)


@cli.command("plugin-check")
@click.argument("object_id")
@click.option("--kind", type=_Choice(KINDS), help="Kind of the object when the id is ambiguous.")
def plugin_check(object_id: str, kind: str | None) -> None:
    """Run restbench's conformance checks on a registered object."""
    from restbench.plugins.testing import check_object

    registry = get_registry()
    kinds = [kind] if kind else [k for k in KINDS if object_id in registry.all(k)]
    if not kinds:
        raise UsageError(f"OBJECT_ID: no registered object has id '{object_id}' (see restbench list KIND)")
    failures = 0
    for k in kinds:
        problems = check_object(k, registry.get(k, object_id))
        if problems:
            failures += len(problems)
            for p in problems:
                console.print(f"[red]FAIL[/red] {k} {object_id}: {p}")
        else:
            console.print(f"[green]ok[/green] {k} {object_id}")
        for skipped in problems.skipped:  # parts that could not run on this machine
            console.print(f"[yellow]{skipped}[/yellow] ({k} {object_id})")
    if failures:
        sys.exit(1)


@cli.group("leaderboard")
def leaderboard_group() -> None:
    """Build, validate and publish leaderboards (leaderboards/NAME/)."""


@leaderboard_group.command("build")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Leaderboard folder, e.g. leaderboards/NAME.")
@click.option("--name", default=None, help="Leaderboard name (default: the folder's name).")
@click.option("--baseline", default=None,
              help="Method the speedups are measured against (the paper: sors). Default: the one method whose "
                   "recipe is plain training; none when that is ambiguous.")
@click.option("--noise", default=None, help="Corruption shown as 'under noise' in the confusion and hypnogram plots.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Significance level of the paired tests that mark ties.")
@click.option("--no-plots", is_flag=True, help="Skip the figures.")
def leaderboard_build(run_dirs, out, name, baseline, noise, alpha, no_plots) -> None:
    """Build leaderboard.json/.csv/.md, plots and index.html from one or more finished runs."""
    from restbench.report.leaderboard import build

    data = build(run_dirs, out, name=name, baseline=baseline, noise=noise, alpha=alpha, plots=not no_plots)
    console.print(f"leaderboard {data['name']}: {len(data['entries'])} entries from {len(data['runs'])} run(s) "
                  f"-> {out}", highlight=False, soft_wrap=True)


@leaderboard_group.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Also fail on stale runs (another restbench version or profile).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def leaderboard_validate(path, strict, as_json) -> None:
    """Check a leaderboard: schema, runs complete, no duplicate cells, file hashes, every number recomputed."""
    from rich.markup import escape

    from restbench.publish import validate_leaderboard

    report = validate_leaderboard(path)
    if as_json:
        _emit_json(report.to_dict())
    else:
        for line in report.problems:  # escaped: 'entries[liu]' is not rich markup
            console.print(f"[red]problem[/red] {escape(line)}", highlight=False, soft_wrap=True)
        for line in report.stale:
            console.print(f"[yellow]stale[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
        if report.unchecked:
            console.print(f"{len(report.unchecked)} recorded artifact(s) not published here, hashes not checked")
        verdict = "[green]valid[/green]" if report.ok else "[red]invalid[/red]"
        console.print(f"{path}: {verdict} ({report.checked_files} file hashes checked)")
    if not report.ok or (strict and report.stale):
        sys.exit(1)


@leaderboard_group.command("publish")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--to", "to", type=click.Path(path_type=Path), required=True, help="Leaderboard folder.")
@click.option("--baseline", default=None, help="Speedup baseline method (default: kept from the leaderboard).")
@click.option("--noise", default=None, help="Corruption shown as 'under noise' in the plots.")
@click.option("--reproduce", "reproduce", is_flag=True,
              help="First re-evaluate RUN_DIR from its checkpoints (restbench reproduce): labelled reproduced when "
                   "every cell matches, not published when one differs. Without it: self-reported.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="With --reproduce: the dataset's local files.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=_cache_dir, show_default=".restbench-cache or $RESTBENCH_CACHE_DIR")
def leaderboard_publish(run_dir, to, baseline, noise, reproduce, data_dir, cache_dir) -> None:
    """Validate the leaderboard, add RUN_DIR to it and rebuild it (publishing twice changes nothing)."""
    from restbench.publish import publish
    from restbench.studies.reproduce import NotReproduced

    try:
        data, outcome = publish(run_dir, to, baseline=baseline, noise=noise, reproduce=reproduce, data_dir=data_dir,
                                cache_dir=cache_dir, console=err_console)
    except NotReproduced as exc:
        _print_reproduction(exc.reproduction)
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    console.print(f"{to}: run {outcome}; {len(data['entries'])} entries from {len(data['runs'])} run(s)",
                  highlight=False, soft_wrap=True)


def _validation_search_options(command):
    """The options restbench search and restbench sweep share (what is trained, how it is scored)."""
    for option in reversed([
        click.option("--profile", default=profiles.DEFAULT_PROFILE, show_default=True,
                     type=_Choice(list(profiles.PROFILES)), help="Knob set (restbench list profiles)."),
        click.option("--corruption", default=None, help="White-box attack corruption to score with (default: the one "
                     "registered white-box corruption of the paper suite)."),
        click.option("--seed", type=int, default=None, help="Training seed (default: the profile's first)."),
        click.option("--max-windows", type=int, default=None,
                     help="Validation windows scored (default: the profile's max_test_windows)."),
        click.option("--dataset", default=None, help="Dataset id (default: the one marked default)."),
        click.option("--model", default=None, help="Model id (default: the one marked default)."),
        click.option("--set", "sets", multiple=True, metavar="KNOB=VALUE",
                     help="Core knob or plugin option, as for restbench run."),
        click.option("--data-dir", type=click.Path(path_type=Path), help="Local dataset files."),
        click.option("--cache-dir", type=click.Path(path_type=Path), default=_cache_dir,
                     show_default=".restbench-cache or $RESTBENCH_CACHE_DIR"),
    ]):
        command = option(command)
    return command


def _search_command_words(words: list[str], profile, corruption, seed, max_windows, dataset, model, sets, out) -> str:
    """The command line recorded with a search or sweep table (checked values, shell-quoted)."""
    import shlex

    if seed is not None and seed < 0:
        raise UsageError(f"--seed: expected a non-negative integer, got {seed}")
    if max_windows is not None and max_windows < 1:
        raise UsageError(f"--max-windows: expected a positive integer, got {max_windows}")
    words = [*words, "--profile", profile]
    for flag, given in (("--corruption", corruption), ("--seed", seed), ("--max-windows", max_windows),
                        ("--dataset", dataset), ("--model", model)):
        if given is not None:
            words += [flag, str(given)]
    for pair in sets:
        words += ["--set", pair]
    return " ".join(shlex.quote(w) for w in [*words, "--out", str(out)])


@cli.command("sweep")
@click.argument("method")
@click.option("--grid", "axes", multiple=True, required=True, metavar="ID.NAME=VALUES",
              help="An option and its values: START:STOP:STEP (inclusive) or V1,V2,...; repeat for a product grid.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for sweep.json/.md/.png/.svg and chosen.json (default: sweeps/METHOD-OPTIONS).")
@_validation_search_options
@click.option("--jobs", "n_jobs", default="1", show_default=True, help="Worker processes (or auto), as for restbench run.")
@click.option("--executor", default="local", show_default=True, type=_Choice(["local", "ray"]), help="local or ray, as for restbench run.")
@click.option("--address", "ray_address", default=None, help="With --executor ray: an existing cluster's address.")
@click.option("--store", "store_dir", type=click.Path(path_type=Path), default=None,
              help="Job store (default: $RESTBENCH_STORE or CACHE_DIR/store); a point trained before is not trained again.")
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bars (default in CI).")
def sweep_cmd(method, axes, out, profile, corruption, seed, max_windows, dataset, model, sets, data_dir, cache_dir,
              n_jobs, executor, ray_address, store_dir, quiet) -> None:
    """The paper's searches on validation (section 4.4) over any declared option: train METHOD at
    every grid point, score it by the mean of clean macro-F1 and macro-F1 under the attack at each
    of its severities, choose the best; e.g. restbench sweep rest-a --grid rest-a.train_eps=0:30:2.
    Pass the result to a run with restbench run --from-sweep OUT."""
    from restbench.run.progress import quiet_by_default
    from restbench.studies.sweep import SweepRequest, parse_axis, sweep

    grid = dict(parse_axis(a) for a in axes)
    if len(grid) != len(axes):
        raise UsageError("--grid: an option is given twice")
    out = out or Path("sweeps") / "-".join([method, *[t.split(".", 1)[1] for t in grid]])
    command = _search_command_words(["restbench", "sweep", method, *[w for a in axes for w in ("--grid", a)]],
                                    profile, corruption, seed, max_windows, dataset, model, sets, out)
    request = SweepRequest(
        method=method, grid=grid, out=out, profile=profile, corruption=corruption, dataset=dataset, model=model,
        overrides=_key_values(sets, "--set"), seed=seed, max_windows=max_windows, data_dir=data_dir,
        cache_dir=cache_dir, jobs=_jobs(n_jobs), executor=executor, ray_address=ray_address, store=store_dir,
        command=command, quiet=quiet_by_default() if quiet is None else quiet)
    table = sweep(request, console=err_console)
    from restbench.report.plots import plotting_available, sweep_figure

    if plotting_available()[0]:
        sweep_figure(table, Path(out) / "sweep")
    names, levels = list(table["grid"]), list(table["attack"]["settings"])
    shown = Table(title=f"{table['method']} sweep on validation ({table['profile']}, seed {table['seed']})")
    for col in [*names, "clean F1", *[f"{table['attack']['corruption']} {lv} {table['attack']['unit']}" for lv in levels],
                "score", "chosen"]:
        shown.add_column(col, justify="right")
    for row in table["rows"]:
        shown.add_row(*[json.dumps(row["point"][n]) for n in names], f"{row['clean_f1']:.3f}",
                      *[f"{row['attack_f1'][lv]:.3f}" for lv in levels], f"{row['score']:.4f}",
                      "yes" if row["chosen"] else "")
    console.print(shown)
    console.print(f"chosen {json.dumps(table['chosen'])}; {table['trained_now']} of {len(table['rows'])} points trained "
                  f"now (the rest from the store); written to {out}; use it with restbench run --from-sweep {out}",
                  highlight=False, soft_wrap=True)


@cli.command("search")
@click.argument("method")
@click.option("--option", "option_name", required=True, help="The method's option to search (restbench list methods --options).")
@click.option("--values", required=True, help="Comma-separated values, checked against the option's type and range.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Table JSON file (a .md twin is written beside it).")
@_validation_search_options
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress bars (default in CI).")
def search_cmd(method, option_name, values, out, profile, corruption, seed, max_windows, dataset, model, sets,
               data_dir, cache_dir, quiet) -> None:
    """Line search of METHOD's --option on the validation split (the paper's section 4.4): train at
    every value, score each by the mean of clean macro-F1 and macro-F1 under the attack at each
    of its severities (PGD at 2, 6 and 12 uV), choose the best; e.g.
    restbench search rest-a --option train_eps --values 0,2,4,6,8,10 --out docs/eps-search/x.json"""
    from restbench.run.progress import quiet_by_default
    from restbench.studies.search import SearchRequest, search

    command = _search_command_words(["restbench", "search", method, "--option", option_name, "--values", values],
                                    profile, corruption, seed, max_windows, dataset, model, sets, out)
    value_list = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
    request = SearchRequest(
        method=method, option=option_name, values=value_list, out=out, profile=profile, corruption=corruption,
        dataset=dataset, model=model, overrides=_key_values(sets, "--set"), seed=seed, max_windows=max_windows,
        data_dir=data_dir, cache_dir=cache_dir, command=command,
        quiet=quiet_by_default() if quiet is None else quiet,
    )
    table = search(request, console=err_console)
    levels = list(table["attack"]["settings"])
    shown = Table(title=f"{table['method']}.{table['option']} on validation ({table['profile']}, seed {table['seed']})")
    for col in ["value", "clean F1", *[f"{table['attack']['corruption']} {lv} {table['attack']['unit']}" for lv in levels],
                "score", "chosen", "train s"]:
        shown.add_column(col, justify="right")
    for row, wall in zip(table["rows"], table["train_wall_s"]):
        shown.add_row(json.dumps(row["value"]), f"{row['clean_f1']:.3f}",
                      *[f"{row['attack_f1'][lv]:.3f}" for lv in levels], f"{row['score']:.4f}",
                      "yes" if row["chosen"] else "", f"{wall:.0f}")
    console.print(shown)
    console.print(f"chosen {table['method']}.{table['option']} = {json.dumps(table['chosen'])}; "
                  f"table: {out} and {Path(out).with_suffix('.md')}", highlight=False, soft_wrap=True)


@cli.command("new-plugin")
@click.argument("kind", type=_Choice(KINDS))
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder in which the package folder restbench-NAME is written.")
def new_plugin_cmd(kind: str, name: str, out: Path) -> None:
    """Write a ready plugin package: one working KIND object with id NAME, its pyproject.toml
    (entry point included), tests using restbench.plugins.testing, and a README."""
    from restbench.plugins.scaffold import files_for, write_plugin

    root = write_plugin(kind, name, out)
    for relative in files_for(kind, name):
        console.print(f"wrote {root / relative}", highlight=False, soft_wrap=True)
    console.print(f"next: pip install {root} && restbench plugin-check {name}", highlight=False, soft_wrap=True)


def _add_plugin_commands() -> None:
    from restbench.plugins.registry import strict_mode

    registry = get_registry()
    try:
        registry.pm.hook.register_commands(cli=cli)
    except Exception as exc:  # a broken plugin command must not take the CLI down, unless strict
        if strict_mode():
            raise PluginError(f"a plugin's register_commands failed (RESTBENCH_STRICT_PLUGINS=1): {exc}") from exc
        err_console.print(f"[yellow]warning[/yellow]: a plugin's register_commands failed: {exc}")


def _needs_plugin_commands(args: list[str]) -> bool:
    """Whether plugins' commands must be added first: not for a built-in command or --version,
    which then start without loading (and importing) every plugin."""
    first = next((a for a in args if not a.startswith("-")), None)
    if first is None:
        return "--version" not in args  # the root help lists plugin commands too
    return first not in cli.commands


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors and exit codes instead of tracebacks. SIGTERM (kill,
    a scheduler's cancel) is handled as Ctrl-C: finished results are kept, pool workers stop."""
    previous = signal.signal(signal.SIGTERM, _terminated) if threading.current_thread() is threading.main_thread() else None
    try:
        if _needs_plugin_commands(sys.argv[1:] if argv is None else argv):
            _add_plugin_commands()
        cli.main(args=argv, prog_name="restbench", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):  # click turns Ctrl-C (and SIGTERM, above) into Abort
        err_console.print("interrupted: finished results are kept; rerun a run with --resume to continue")
        sys.exit(130)
    except PluginError as exc:
        if os.environ.get("RESTBENCH_DEBUG"):
            raise
        click.echo(f"error: {exc}", err=True)  # plain echo: rich would wrap it over lines
        sys.exit(exc.exit_code)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
