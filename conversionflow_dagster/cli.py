"""The ``conversionflow`` command: generate sample data, validate inputs, run, open the UI.

Runs go through the persistent Dagster instance in ``storage/`` (``DAGSTER_HOME``), so every
run started here appears in the UI with its logs, metadata and checks.
"""

import argparse
import datetime as dt
import logging
import math
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from conversionflow_dagster import settings
from conversionflow_dagster.asset_names import (
    ATTRIBUTION_REPORT,
    BUDGET_ALLOCATION,
    MARKET_ALLOCATION,
    PARAMETER_EXPORT,
    POSTERIOR_TRACE,
)
from conversionflow_dagster.core.errors import ConversionflowError

if TYPE_CHECKING:  # imported lazily at run time: `conversionflow --help` stays instant
    import dagster as dg

    from conversionflow_dagster.core.config import ProjectConfig

SAMPLE_DIR = "data/sample"
# Flags that override a config field: refused outside that field's bounds (core/config.py).
BOUNDED_FLAGS = (
    "chains",
    "warmup",
    "draws",
    "holdout_weeks",
    "budget",
    "total_budget",
    "scenarios",
)
_LIMITS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}
_DATES = re.compile(r"\d{4}-\d{2}(?:-\d{2})?")


class UsageError(Exception):
    """An argument the command cannot use: refused in one line, before anything runs (exit 2)."""


def cmd_generate(args: argparse.Namespace) -> int:
    """Write the synthetic sample (events, spend, controls, truth) under ``--out``."""
    from conversionflow_dagster.core.synthetic.events import SyntheticSpec, simulate, write_sample

    try:
        spec = SyntheticSpec(
            n_weeks=args.weeks,
            n_channels=args.channels,
            seed=args.seed,
            touch_scale=args.touch_scale,
            start=args.start,
            file_format=args.format,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    data = simulate(spec)
    written = write_sample(data, settings.project_root() / args.out)
    print(
        f"wrote {len(data.events):,} events in {len(written['events'])} monthly files, "
        f"spend and controls under {args.out}/ (truth in {args.out}/truth/)"
    )
    return 0


def _sample_missing(root: Path) -> bool:
    return not (root / SAMPLE_DIR / "truth" / "parameters.json").is_file()


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def asset_config(args: argparse.Namespace) -> dict[str, dict]:
    """Run config per asset from the flags that were given (the original tool's flags)."""
    fit = _given(args, ("chains", "warmup", "draws", "holdout_weeks", "likelihood", "seed"))
    if args.use_hurdle:
        fit["likelihood"] = "hurdle_poisson"
    allocation = _given(args, ("budget", "scenarios"))
    report = _given(args, ("output", "formats"))
    if "output" in report:
        report["output_dir"] = report.pop("output")
    across = _given(args, ("total_budget",))
    config = {
        POSTERIOR_TRACE: fit,
        BUDGET_ALLOCATION: allocation,
        MARKET_ALLOCATION: across,
        ATTRIBUTION_REPORT: report,
    }
    return {asset: values for asset, values in config.items() if values}


def latest_export_month(root: Path, project_key: str, markets: list[str]) -> str | None:
    """The project's most recent month with a stored parameter export (what --stage2-only
    reuses); with markets, the most recent month every one of them has."""
    folder = settings.asset_dir(project_key, PARAMETER_EXPORT, root)
    folders = [folder / m for m in markets] or [folder]
    months = [{path.stem[:7] for path in f.glob("*.json")} for f in folders]
    common = set.intersection(*months)
    return max(common) if common else None


def prepare_test_mode(root: Path) -> tuple[Path, Path]:
    """A small generated project under storage/test_mode (its own data, assets and config)."""
    import yaml

    from conversionflow_dagster.core.synthetic.events import SyntheticSpec, simulate, write_sample

    test_root = settings.storage_dir(root) / "test_mode"
    data = test_root / SAMPLE_DIR
    if not (data / "truth" / "parameters.json").is_file():
        print("generating the test-mode data (104 weeks, 5 channels) ...", flush=True)
        write_sample(simulate(SyntheticSpec(n_weeks=104, n_channels=5, seed=11)), data)
    document = yaml.safe_load((settings.PACKAGE_ROOT / settings.DEFAULT_CONFIG).read_text())
    document["project"]["name"] = "test mode"
    document["project"]["partitions"] = {"start_month": "2023-01", "end_month": "2024-12"}
    document["channels"] = dict(list(document["channels"].items())[:5])
    document["model"].update({"window_weeks": 104, "warmup": 500, "draws": 500})
    config = test_root / "configs" / "test_mode.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    return test_root, config


def run_plan(
    args: argparse.Namespace,
    months: list[str],
    root: Path,
    project_key: str,
    markets: list[str],
    pooled: bool = False,
):
    """Which runs the flags ask for; ``pooled``: the markets are fitted together."""
    if args.total_budget is not None and not markets:
        raise UsageError(
            "--total-budget: splits a budget across project.markets, and this project has "
            "none; use --budget"
        )
    selected = args.markets or []
    unknown = [m for m in selected if m not in markets]
    if unknown:
        listed = ", ".join(markets) if markets else "none: project.markets is empty"
        raise UsageError(
            f"--markets: {', '.join(unknown)} not in project.markets (it lists {listed})"
        )
    from conversionflow_dagster.runner import pipeline_plan

    layout = {"markets": markets, "pooled": pooled, "selected": selected}
    if args.stage2_only:
        month = args.month_to or latest_export_month(root, project_key, selected or markets)
        if month is None:
            raise SystemExit("error: --stage2-only needs a stored parameter export; run stage 1")
        return pipeline_plan([], fit_months=[month], ingest=False, stage1=False, **layout)
    fit_months = {"none": [], "last": months[-1:], "all": months}[args.fit]
    return pipeline_plan(months, fit_months=fit_months, stage2=not args.stage1_only, **layout)


def _config_file(root: Path, given: str | None) -> Path:
    """The config ``--config`` names (a file under the project root), else the environment's
    (``CONVERSIONFLOW_CONFIG``). The choice is passed on explicitly, never through the
    environment, so it cannot leak into later commands of the same process."""
    if given is not None:
        path = (root / given).resolve()
        if not path.is_relative_to(root):
            raise UsageError(
                f"--config {given}: resolves to {path}, outside the project root {root}"
            )
        if not path.is_file():
            raise UsageError(f"--config {given}: no such file under the project root {root}")
        return path
    return settings.config_path(root)


def selected_months(args: argparse.Namespace, config: "ProjectConfig") -> list[str]:
    """The months ``--from``/``--to`` select, refused unless they lie, in order, within the
    configured months (a partition outside them does not exist)."""
    from conversionflow_dagster.core.config import MONTH_PATTERN
    from conversionflow_dagster.core.months import months_between

    first, last = config.month_range()
    end = "end_month" if config.project.partitions.end_month else "last month (no end_month)"
    configured = (
        f"the configured months are {first}..{last} (project.partitions.start_month..{end})"
    )
    for flag, month in (("--from", args.month_from), ("--to", args.month_to)):
        if month is not None and not MONTH_PATTERN.match(month):
            raise UsageError(f"{flag} {month}: expected a month as YYYY-MM; {configured}")
        if month is not None and not first <= month <= last:
            raise UsageError(f"{flag} {month}: outside the project's months; {configured}")
    start, stop = args.month_from or first, args.month_to or last
    if start > stop:
        raise UsageError(f"--from {start} is after --to {stop}; {configured}")
    return months_between(start, stop)


def _check_output(root: Path, output: str | None, config: "ProjectConfig") -> None:
    """``--output`` stays inside the project root, as the config's own paths do."""
    from conversionflow_dagster.core.config import resolve_project_path
    from conversionflow_dagster.core.errors import ConfigError

    if output is None:
        return
    allow = config.project.allow_paths_outside_root
    try:
        resolve_project_path(root, output, allow_outside=allow)
    except ConfigError as error:
        raise UsageError(f"--output {output}: {error}") from None


def _with_holdout(config: "ProjectConfig", weeks: int | None) -> "ProjectConfig":
    """The config with ``--holdout-weeks`` laid over ``model.holdout_weeks``, so the history
    check before any run counts the weeks the flag holds out (refused if model.window_weeks
    would leave too few to fit)."""
    if weeks is None:
        return config
    from pydantic import ValidationError

    from conversionflow_dagster.core.config import ModelSection

    try:
        model = ModelSection.model_validate({**config.model.model_dump(), "holdout_weeks": weeks})
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise UsageError(f"--holdout-weeks {weeks}: {reason}") from None
    return config.model_copy(update={"model": model})


class Progress:
    """One line per run, with its reasons when it failed. Consecutive runs that fail the same
    way (the same reasons but for the month) are told once: with ``end_month`` unset, data that
    stop early would otherwise fail one run per month up to today."""

    def __init__(self) -> None:
        self._shape: tuple[str, ...] | None = None  # the last failure, months masked
        self._same: list[str] = []  # the runs since that failed the same way

    def __call__(self, name: str, ok: bool, reasons: list[str]) -> None:
        shape = None if ok else tuple(_DATES.sub("", line) for line in [name, *reasons])
        if shape is not None and shape == self._shape:
            self._same.append(name)
            return
        self.close()
        self._shape = shape
        print(f"  {name}: {'ok' if ok else 'FAILED'}", flush=True)
        for reason in reasons:
            print(f"    {reason}", flush=True)

    def close(self) -> None:
        """Tell the runs that failed like the one before them."""
        if self._same:
            count = len(self._same)
            print(
                f"  {self._same[0]} to {self._same[-1]}: FAILED the same way "
                f"({count} run{'s' if count > 1 else ''})",
                flush=True,
            )
        self._same = []


def _terminal_console() -> "dg.LoggerDefinition":
    """The runs' console logger without ``--debug``: their log lines at the chosen level,
    without Dagster's error records (each carries a stack trace, and the command prints every
    failed run's reasons itself; the event log and the UI keep them all), and a line repeated
    with only a month changed (one warning per missing monthly partition) shown once per run."""
    import dagster as dg

    class TerminalLines(logging.StreamHandler):
        def __init__(self) -> None:
            super().__init__(sys.stderr)
            self.shown: set[str] = set()

        def format(self, record: logging.LogRecord) -> str:
            meta = getattr(record, "dagster_meta", None) or {}
            step, text = meta.get("step_key"), meta.get("orig_message") or record.getMessage()
            return f"  {step}: {text}" if step else f"  {text}"

        def filter(self, record: logging.LogRecord) -> bool:
            shape = _DATES.sub("", self.format(record))
            if record.levelno >= logging.ERROR or shape in self.shown:
                return False
            self.shown.add(shape)
            return True

    @dg.logger(
        {"log_level": dg.Field(str, is_required=False, default_value="WARNING")},
        description="The command line's view of a run; the event log keeps every record.",
    )
    def terminal(init_context) -> logging.Logger:
        logger = logging.Logger("conversionflow", init_context.logger_config["log_level"])
        logger.addHandler(TerminalLines())
        return logger

    return terminal


def cmd_run(args: argparse.Namespace) -> int:
    """Materialise the pipeline for a month range through the persistent instance. Every
    argument is checked against the config before anything is generated or run."""
    from conversionflow_dagster.core.config import load_config

    root = settings.project_root()
    home_root = root
    if args.mode == "test":
        root, config_file = prepare_test_mode(root)
    else:
        config_file = _config_file(root, args.config)
    config = _with_holdout(load_config(config_file), args.holdout_weeks)
    months = selected_months(args, config)
    _check_output(root, args.output, config)
    if not args.stage2_only and args.fit != "none":  # too short a history: told before any run
        from conversionflow_dagster.core.errors import ContractError
        from conversionflow_dagster.core.ingest.validation import check_history

        try:
            check_history(root, config, months[-1])
        except ContractError as error:
            if args.holdout_weeks is None:
                raise
            raise UsageError(f"--holdout-weeks {args.holdout_weeks}: {error}") from None
    markets = list(config.project.markets)
    plan = run_plan(args, months, root, config.project.key, markets, config.pools_markets)
    if args.mode != "test" and args.sample and _sample_missing(root):
        print("generating the sample data (first run only) ...", flush=True)
        cmd_generate(_parser().parse_args(["generate"]))

    import dagster as dg

    from conversionflow_dagster.code_location import build_definitions
    from conversionflow_dagster.runner import execute_plan

    settings.ensure_dagster_home(home_root)
    defs = build_definitions(root, config_file)

    print(
        f"{len(plan)} run(s) with {config_file.name} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})",
        flush=True,
    )
    progress = Progress()
    with dg.DagsterInstance.get() as instance:
        summary = execute_plan(
            defs,
            instance,
            plan,
            asset_config=asset_config(args),
            log_level=args.log_level,
            console=None if args.debug else _terminal_console(),
            on_run=progress,
        )
    progress.close()
    for name in summary.skipped:
        print(f"  {name}: skipped (an earlier run it needs failed)")
    if not summary.success:
        failures = summary.failures()
        name, reasons = next(iter(failures.items()))
        more = f" ({len(failures) - 1} more failed run(s) above)" if len(failures) > 1 else ""
        print(f"error: {name}: {reasons[0] if reasons else 'failed'}{more}", file=sys.stderr)
        return 1
    print("done: open the UI with `conversionflow ui` to inspect runs and assets")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the config and read every input file without running anything; with
    ``--prior-check``, also whether the priors put the target's scale in range."""
    from conversionflow_dagster.core.ingest.validation import validate_inputs

    root = settings.project_root()
    config_file = _config_file(root, args.config)
    if args.prior_check:  # before JAX starts; the compiled check is cached like a fit
        from conversionflow_dagster.core.model.jax_setup import configure_jax

        configure_jax(1, str(settings.jax_cache_dir(root)))
    ok, lines = validate_inputs(root, config_file, prior_check=args.prior_check)
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_init(args: argparse.Namespace) -> int:
    """Propose a config for the user's own data files, write it, and validate it."""
    from conversionflow_dagster.core.atomic import write_text_atomic
    from conversionflow_dagster.core.ingest.config_proposal import (
        default_name,
        project_key,
        render_config,
        summary_lines,
    )
    from conversionflow_dagster.core.ingest.inference import inspect_files
    from conversionflow_dagster.core.ingest.validation import validate_inputs

    root = settings.project_root()
    name = args.name or default_name(args.files)
    out = args.out or f"configs/{project_key(name)}.yaml"
    if (root / out).exists() and not args.force:
        message = f"error: {out} exists; pass --force to replace it or --out another file"
        print(message, file=sys.stderr)
        return 1
    inference = inspect_files(args.files)
    print("\n".join(summary_lines(inference, args.attributable_share)))
    text = render_config(inference, name, root, out, args.attributable_share)
    write_text_atomic(root / out, text)
    print(f"wrote {out}; validating it:")
    try:
        ok, lines = validate_inputs(root, root / out)
    except ConversionflowError as error:
        ok, lines = False, [f"error: {error}"]
    print("\n".join(lines))
    if not ok:
        print(
            f"validate failed: fix what is named above (a key in {out}, or the data), then "
            f"run `conversionflow validate --config {out}`"
        )
    return 0 if ok else 1


def cmd_ui(args: argparse.Namespace) -> int:
    """Start the Dagster UI on 127.0.0.1 with the persistent instance, and beside it a
    read-only server of the reports folder, so the report links in the UI open in the browser
    (browsers refuse ``file://`` links from a web page)."""
    import threading

    from conversionflow_dagster.core.config import load_config, resolve_project_path
    from conversionflow_dagster.process_group import run_process_group
    from conversionflow_dagster.report_server import REPORTS_URL_ENV, ReportServer

    root = settings.project_root()
    settings.ensure_dagster_home(root)
    config = load_config(settings.config_path(root))
    allow = config.project.allow_paths_outside_root
    reports = resolve_project_path(root, config.report.output_dir, allow_outside=allow)
    port = args.port + 1 if args.reports_port is None else args.reports_port
    try:
        server = ReportServer(reports, port)
    except (OSError, OverflowError) as error:  # in use, or not a port number
        reason = getattr(error, "strerror", None) or error
        raise UsageError(f"--reports-port {port}: {reason}; choose another") from None
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        # the module, not a workspace file: the project root may be any folder
        "-m",
        "conversionflow_dagster.definitions",
        "-a",
        "defs",
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    # a URL already set is a deployment's (a proxy in front of this server): it is kept
    own_url = REPORTS_URL_ENV not in os.environ
    linked = os.environ.setdefault(REPORTS_URL_ENV, server.url)  # read by the report's runs
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"reports ({reports}) served read-only at {server.url}, linked as {linked}", flush=True)
    try:
        return run_process_group(command, root)  # one Ctrl-C or SIGTERM stops every process
    finally:
        server.shutdown()
        server.server_close()
        if own_url:
            del os.environ[REPORTS_URL_ENV]


def _amount(text: str) -> float:
    """A finite number; its bounds are the config field's (see :func:`check_bounds`)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    return value


def _floats(text: str) -> list[float]:
    try:
        return [_amount(part) for part in text.split(",") if part.strip()]
    except argparse.ArgumentTypeError:
        message = f"expected numbers separated by commas, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _whole(text: str) -> int:
    """A whole number; its bounds, where a config field has them, are checked with it."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _share(text: str) -> float:
    try:
        share = float(text)
    except ValueError:
        share = float("nan")
    if not 0 < share <= 1:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1], e.g. 0.05; got {text!r}")
    return share


def _formats(text: str) -> list[str]:
    formats = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = sorted(set(formats) - {"html", "csv", "json"})
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"formats are html, csv and json; got {text!r}")
    return formats


class _Parser(argparse.ArgumentParser):
    """argparse, refusing in one line that names the flag (no usage block: ``--help`` has it)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # "--budget -1e6" is a value to refuse, not an unknown option: argparse only takes
        # -12 and -1.5 for negative numbers, so widen its pattern to exponents
        self._negative_number_matcher = re.compile(r"^-\d*\.?\d+(?:[eE][+-]?\d+)?$")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message.removeprefix('argument ')}\n")


def check_bounds(args: argparse.Namespace) -> None:
    """Refuse a flag that overrides a config field with a value outside that field's bounds,
    validated by the config's own models so the bounds live in one place."""
    given = {f: getattr(args, f) for f in BOUNDED_FLAGS if getattr(args, f, None) is not None}
    if not given:
        return
    from pydantic import ValidationError

    from conversionflow_dagster.core.config import ModelSection, OptimisationSection

    for section in (ModelSection, OptimisationSection):
        try:
            section.model_validate({k: v for k, v in given.items() if k in section.model_fields})
        except ValidationError as error:
            item = error.errors()[0]
            value = item["input"]
            noun = "a whole number" if isinstance(value, int) else "an amount"
            key, sign = _LIMITS.get(item["type"], (None, None))
            expected = f"{noun} {sign} {_shown(item['ctx'][key])}" if key else item["msg"]
            flag = "--" + str(item["loc"][0]).replace("_", "-")
            raise UsageError(f"{flag}: expected {expected}, got {_shown(value)}") from None


def _shown(number: object) -> str:
    """A number as a person writes it: -1e6 as -1000000, 0.0 as 0."""
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)


@contextmanager
def terminal(debug: bool) -> Iterator[None]:
    """Without ``--debug`` nothing but the command's own lines reaches the terminal: no Python
    warnings and no library log records (Dagster's instance notices, JAX's platform notes)."""
    if debug:
        yield
        return
    root_logger, quiet = logging.getLogger(), logging.NullHandler()
    root_logger.addHandler(quiet)  # records that reach no handler are not printed either
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root_logger.removeHandler(quiet)


def _parser() -> argparse.ArgumentParser:
    from conversionflow_dagster.core.model.priors import LIKELIHOODS  # no JAX: the config's list

    parser = _Parser(prog="conversionflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write synthetic sample data with known truth")
    gen.add_argument("--out", default=SAMPLE_DIR, help="folder, relative to the project root")
    gen.add_argument("--weeks", type=_whole, default=156)
    gen.add_argument("--channels", type=_whole, default=7)
    gen.add_argument("--seed", type=_whole, default=0)
    gen.add_argument(
        "--touch-scale",
        type=float,
        default=1.0,
        help="multiplies event volume (2.5 gives about 1.3M events)",
    )
    gen.add_argument("--start", type=_day, default="2023-01-02", help="first week (a Monday)")
    gen.add_argument("--format", choices=["csv", "parquet"], default="csv")
    gen.set_defaults(func=cmd_generate)

    run = sub.add_parser("run", help="materialise the pipeline through the Dagster instance")
    run.add_argument("--config", help="config file, relative to the project root")
    run.add_argument("--from", dest="month_from", help="first month, YYYY-MM")
    run.add_argument("--to", dest="month_to", help="last month, YYYY-MM")
    run.add_argument(
        "--sample",
        action="store_true",
        help="generate the bundled sample data first if it is missing",
    )
    run.add_argument(
        "--fit",
        choices=["last", "all", "none"],
        default="last",
        help="months to fit (and allocate) as of: the last, every one, or none",
    )
    run.add_argument(
        "--markets",
        nargs="+",
        metavar="MARKET",
        help="with project.markets: only these markets (default: all): their exports, "
        "allocations and reports, and with model.markets: independent their fits (a "
        "hierarchical fit always pools every market)",
    )
    stages = run.add_mutually_exclusive_group()
    stages.add_argument(
        "--stage1-only", action="store_true", help="ingest, fit and export; no allocation or report"
    )
    stages.add_argument(
        "--stage2-only",
        action="store_true",
        help="allocation and report from the stored export of --to (default: "
        "the latest), without refitting",
    )
    run.add_argument(
        "--mode",
        choices=["normal", "test"],
        default="normal",
        help="test: a quick end-to-end run on small generated data under storage/test_mode",
    )
    run.add_argument("--chains", type=_whole, help="MCMC chains (default: model.chains)")
    run.add_argument("--warmup", type=_whole, help="warm-up iterations per chain")
    run.add_argument("--draws", type=_whole, help="posterior draws per chain")
    run.add_argument(
        "--holdout-weeks",
        type=_whole,
        help="last weeks held out of the fit and forecast, for hold-out CRPS and MAPE "
        "(default: model.holdout_weeks)",
    )
    run.add_argument(
        "--likelihood",
        choices=LIKELIHOODS,
        help="observation model",
    )
    run.add_argument(
        "--use-hurdle",
        action="store_true",
        help="hurdle Poisson likelihood, for zero-inflated series",
    )
    run.add_argument("--seed", type=_whole, help="sampler seed")
    run.add_argument("--budget", type=_amount, help="total budget over the planning horizon")
    run.add_argument(
        "--total-budget", type=_amount, help="with markets: the budget split across markets"
    )
    run.add_argument("--scenarios", type=_floats, help="scenario budgets, e.g. 2e6,2.5e6,5e6")
    run.add_argument("--output", help="report folder (relative to the project root)")
    run.add_argument("--formats", type=_formats, help="report formats, e.g. csv,json,html")
    run.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default="WARNING",
        help="console log level of the runs (the UI keeps every event)",
    )
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check config and input files without running")
    val.add_argument("--config", help="config file, relative to the project root")
    val.add_argument(
        "--prior-check",
        action="store_true",
        help="also draw the target from the priors and say whether its scale is in range",
    )
    val.set_defaults(func=cmd_validate)

    init = sub.add_parser("init", help="propose a config for your own data files")
    init.add_argument("files", nargs="+", metavar="DATA_FILE", help="CSV or Parquet file(s)")
    init.add_argument("--name", help="project name (default: the data file's name)")
    init.add_argument(
        "--out",
        help="config file, relative to the project root (default: configs/<project key>.yaml)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing config file")
    init.add_argument(
        "--attributable-share",
        type=_share,
        help="share of total sales the data see (required for an event log, e.g. 0.05)",
    )
    init.set_defaults(func=cmd_init)

    ui = sub.add_parser("ui", help="start the Dagster UI (bound to 127.0.0.1)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=_whole, default=3000)
    ui.add_argument(
        "--reports-port",
        type=_whole,
        help="port of the read-only reports server on 127.0.0.1 (default: --port + 1)",
    )
    ui.set_defaults(func=cmd_ui)

    for command in sub.choices.values():
        command.add_argument(
            "--debug",
            action="store_true",
            help="show tracebacks, warnings and Dagster's own log output",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command. A refused argument is one line and exit 2, an error one line and exit 1;
    tracebacks only with ``--debug``."""
    parser = _parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    with terminal(debug):
        try:
            check_bounds(args)
            return args.func(args)
        except UsageError as error:
            print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
            return 2
        except ConversionflowError as error:
            if debug:
                traceback.print_exc()
            print(f"error: {error}", file=sys.stderr)
            return 1
        except Exception as error:
            if debug:
                raise
            text = " ".join(str(error).split())  # one line, whatever the library wrote
            hint = "(run with --debug for the traceback)"
            print(f"error: {type(error).__name__}: {text} {hint}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
