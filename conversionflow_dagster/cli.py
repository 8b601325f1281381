"""The ``conversionflow`` command: generate sample data, validate inputs, run, open the UI.

Runs go through the persistent Dagster instance in ``storage/`` (``DAGSTER_HOME``), so every
run started here appears in the UI with its logs, metadata and checks.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from conversionflow_dagster import settings
from conversionflow_dagster.core.errors import ConversionflowError

SAMPLE_DIR = "data/sample"


def _months(first: str, last: str) -> list[str]:
    import pandas as pd

    return [p.strftime("%Y-%m") for p in pd.period_range(first, last, freq="M")]


def cmd_generate(args: argparse.Namespace) -> int:
    """Write the synthetic sample (events, spend, controls, truth) under ``--out``."""
    import datetime as dt

    from conversionflow_dagster.core.synthetic.events import SyntheticSpec, simulate, write_sample

    spec = SyntheticSpec(
        n_weeks=args.weeks,
        n_channels=args.channels,
        seed=args.seed,
        touch_scale=args.touch_scale,
        start=dt.date.fromisoformat(args.start),
        file_format=args.format,
    )
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
    fit = _given(args, ("chains", "warmup", "draws", "likelihood", "seed"))
    if args.use_hurdle:
        fit["likelihood"] = "hurdle_poisson"
    allocation = _given(args, ("budget", "scenarios"))
    report = _given(args, ("output", "formats"))
    if "output" in report:
        report["output_dir"] = report.pop("output")
    across = _given(args, ("total_budget",))
    config = {
        "posterior_trace": fit,
        "budget_allocation": allocation,
        "market_allocation": across,
        "attribution_report": report,
    }
    return {asset: values for asset, values in config.items() if values}


def latest_export_month(root: Path, markets: list[str]) -> str | None:
    """The most recent month with a stored parameter export (what --stage2-only reuses); with
    markets, the most recent month every one of them has."""
    folder = settings.storage_dir(root) / "assets" / "parameter_export"
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


def run_plan(args: argparse.Namespace, months: list[str], root: Path, markets: list[str]):
    """Which runs the flags ask for."""
    from conversionflow_dagster.runner import pipeline_plan

    if args.markets:
        unknown = sorted(set(args.markets) - set(markets))
        if unknown:
            raise SystemExit(f"error: --markets {unknown} not in project.markets {markets}")
        markets = args.markets
    if args.stage2_only:
        month = args.month_to or latest_export_month(root, markets)
        if month is None:
            raise SystemExit("error: --stage2-only needs a stored parameter export; run stage 1")
        return pipeline_plan([], fit_months=[month], ingest=False, stage1=False, markets=markets)
    fit_months = {"none": [], "last": months[-1:], "all": months}[args.fit]
    return pipeline_plan(
        months, fit_months=fit_months, stage2=not args.stage1_only, markets=markets
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Materialise the pipeline for a month range through the persistent instance."""
    import dagster as dg

    from conversionflow_dagster.code_location import build_definitions
    from conversionflow_dagster.core.config import load_config
    from conversionflow_dagster.runner import execute_plan

    root = settings.project_root()
    settings.ensure_dagster_home(root)
    if args.mode == "test":
        root, config_file = prepare_test_mode(root)
    else:
        if args.config:
            os.environ["CONVERSIONFLOW_CONFIG"] = args.config
        config_file = settings.config_path(root)
        if args.sample and _sample_missing(root):
            print("generating the sample data (first run only) ...", flush=True)
            cmd_generate(_parser().parse_args(["generate"]))
    config = load_config(config_file)
    defs = build_definitions(root, config_file)
    first, last = config.month_range()
    months = _months(args.month_from or first, args.month_to or last)
    plan = run_plan(args, months, root, list(config.project.markets))

    def report(name: str, ok: bool, reasons: list[str]) -> None:
        print(f"  {name}: {'ok' if ok else 'FAILED'}", flush=True)
        for reason in reasons:
            print(f"    {reason}", flush=True)

    print(
        f"{len(plan)} run(s) with {config_file.name} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})",
        flush=True,
    )
    with dg.DagsterInstance.get() as instance:
        summary = execute_plan(
            defs,
            instance,
            plan,
            asset_config=asset_config(args),
            log_level=args.log_level,
            on_run=report,
        )
    for name in summary.skipped:
        print(f"  {name}: skipped (an earlier run it needs failed)")
    if not summary.success:
        name, reasons = next(iter(summary.failures().items()))
        print(f"error: {name}: {reasons[0] if reasons else 'failed'}", file=sys.stderr)
        return 1
    print("done: open the UI with `conversionflow ui` to inspect runs and assets")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the config and read every input file without running anything."""
    from conversionflow_dagster.core.ingest.validation import validate_inputs

    root = settings.project_root()
    if args.config:
        os.environ["CONVERSIONFLOW_CONFIG"] = args.config
    ok, lines = validate_inputs(root, settings.config_path(root))
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_ui(args: argparse.Namespace) -> int:
    """Start the Dagster UI on 127.0.0.1 with the persistent instance."""
    root = settings.project_root()
    settings.ensure_dagster_home(root)
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
    return subprocess.call(command, cwd=root)


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"expected numbers separated by commas, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _formats(text: str) -> list[str]:
    formats = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = sorted(set(formats) - {"html", "csv", "json"})
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"formats are html, csv and json; got {text!r}")
    return formats


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conversionflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write synthetic sample data with known truth")
    gen.add_argument("--out", default=SAMPLE_DIR, help="folder, relative to the project root")
    gen.add_argument("--weeks", type=int, default=156)
    gen.add_argument("--channels", type=int, default=7)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--touch-scale",
        type=float,
        default=1.0,
        help="multiplies event volume (2.5 gives about 1.3M events)",
    )
    gen.add_argument("--start", default="2023-01-02", help="first week (a Monday)")
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
        help="with project.markets: fit and allocate only these markets (default: all)",
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
    run.add_argument("--chains", type=int, help="MCMC chains (default: model.chains)")
    run.add_argument("--warmup", type=int, help="warm-up iterations per chain")
    run.add_argument("--draws", type=int, help="posterior draws per chain")
    run.add_argument(
        "--likelihood",
        choices=["poisson", "negbinomial", "normal", "hurdle_poisson"],
        help="observation model",
    )
    run.add_argument(
        "--use-hurdle",
        action="store_true",
        help="hurdle Poisson likelihood, for zero-inflated series",
    )
    run.add_argument("--seed", type=int, help="sampler seed")
    run.add_argument("--budget", type=float, help="total budget over the planning horizon")
    run.add_argument(
        "--total-budget", type=float, help="with markets: the budget split across markets"
    )
    run.add_argument("--scenarios", type=_floats, help="scenario budgets, e.g. 2e6,2.5e6,5e6")
    run.add_argument("--output", help="report folder (relative to the project root)")
    run.add_argument("--formats", type=_formats, help="report formats, e.g. csv,json,html")
    run.add_argument(
        "--log-level",
        default="WARNING",
        help="console log level of the runs (the UI keeps every event)",
    )
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check config and input files without running")
    val.add_argument("--config", help="config file, relative to the project root")
    val.set_defaults(func=cmd_validate)

    ui = sub.add_parser("ui", help="start the Dagster UI (bound to 127.0.0.1)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except ConversionflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
