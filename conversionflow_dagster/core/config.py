"""The project's YAML configuration: one typed, validated object every stage reads.

Validation happens once, on load, so a typo in a key or an impossible value is reported with the
file and the dotted path of the offending key before any data is touched.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from conversionflow_dagster.core.errors import ConfigError
from conversionflow_dagster.core.model.history import MIN_FIT_WEEKS, weeks_needed
from conversionflow_dagster.core.model.priors import LIKELIHOODS, prior_problems
from conversionflow_dagster.core.model.transforms import ADSTOCKS, SATURATIONS
from conversionflow_dagster.core.months import previous_month

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

NonNegative = Annotated[float, Field(ge=0)]
# The span of time one row of a coarse feed covers (its date is any day inside it).
Period = Literal["day", "week", "month", "quarter", "year"]
PERIODICALLY = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly",
                "year": "yearly"}  # fmt: skip


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PartitionsConfig(_Strict):
    start_month: str
    end_month: str | None = None  # inclusive; None = up to the last complete month

    @field_validator("start_month", "end_month")
    @classmethod
    def _month(cls, value: str | None) -> str | None:
        if value is not None and not MONTH_PATTERN.match(value):
            raise ValueError(f"expected a month as YYYY-MM, got {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> PartitionsConfig:
        if self.end_month is not None and self.end_month < self.start_month:
            raise ValueError(f"end_month {self.end_month} is before start_month {self.start_month}")
        return self


class ProjectSection(_Strict):
    name: str = "conversionflow"
    week_start: Literal[WEEKDAYS] = "monday"  # type: ignore[valid-type]
    partitions: PartitionsConfig
    # Markets (geos): a second partition dimension (market x month) for the export, allocation
    # and report; model.markets says whether they are fitted together or one by one.
    # Needs the panel route with sources.panel.columns.market naming the market column.
    markets: list[str] = []
    allow_paths_outside_root: bool = False

    @field_validator("markets")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        repeated = sorted({m for m in value if value.count(m) > 1})
        if repeated:
            raise ValueError(f"markets listed twice: {repeated}")
        bad = [m for m in value if not m or "|" in m or "/" in m or m != m.strip()]
        if bad:
            raise ValueError(f"market names must be non-empty, without '|', '/' or padding: {bad}")
        return value

    @property
    def key(self) -> str:
        """The project's namespace: its asset-key prefix, its folder under the asset and report
        folders, and its run tag. The name lower-cased, anything but letters and digits as '_'."""
        key = re.sub(r"[^0-9a-z]+", "_", self.name.lower()).strip("_") or "project"
        return key if key[0].isalpha() else f"p_{key}"

    @property
    def week_start_index(self) -> int:
        """Weekday number of the first day of a week (Monday = 0), as pandas counts."""
        return WEEKDAYS.index(self.week_start)


class EventColumns(_Strict):
    """Names of the event file's columns for each field of the events contract."""

    customer_id: str = "customer_id"
    timestamp: str = "timestamp"
    touchpoint: str = "touchpoint"
    # None: conversions are the rows whose event type is one of the source's conversion_types
    conversion: str | None = "conversion"
    value: str = "value"
    event_type: str | None = None  # the interaction (impression, click, purchase, ...)


class _DateColumns(_Strict):
    """Where a row's date is: one date column, or a year column (and a month column)."""

    date: str | None = None  # unused when 'year' is mapped
    year: str | None = None
    month: str | None = None  # month number 1-12 or name, with year

    @model_validator(mode="after")
    def _month_has_year(self) -> _DateColumns:
        if self.month is not None and self.year is None:
            raise ValueError("'month' needs 'year': map the column holding each row's year")
        return self

    def date_fields(self) -> dict[str, str]:
        """The columns that date a row, by the field that maps them."""
        if self.year is None:
            return {"date": self.date}
        return {"year": self.year} | ({"month": self.month} if self.month else {})


class SpendColumns(_DateColumns):
    date: str = "date"
    channel: str = "channel"  # long layout only
    spend: str = "spend"  # long layout only


class EventsSource(_Strict):
    path: str  # a file, or a template with {month} for one file per month
    columns: EventColumns = EventColumns()
    drop_duplicates: bool = False
    # With columns.event_type: rows of these types are conversions, never touches of their
    # touchpoint; with touch_types, only rows of those types are touches.
    conversion_types: list[str] = []
    touch_types: list[str] = []

    @model_validator(mode="after")
    def _event_types(self) -> EventsSource:
        typed = bool(self.conversion_types or self.touch_types)
        if self.columns.event_type is None and typed:
            raise ValueError(
                "conversion_types and touch_types need columns.event_type: map the column "
                "that holds each row's event type"
            )
        if self.columns.event_type is not None and not typed:
            raise ValueError(
                "columns.event_type: list the types that are conversions (conversion_types) "
                "and/or those that are touches (touch_types)"
            )
        both = sorted(set(self.conversion_types) & set(self.touch_types))
        if both:
            raise ValueError(f"event type(s) {both} are in both conversion_types and touch_types")
        if self.columns.conversion is None and not self.conversion_types:
            raise ValueError(
                "columns.conversion: map the 0/1 conversion column, or set conversion_types "
                "(with columns.event_type) to read conversions from the event type"
            )
        return self


class _PeriodicSource(_Strict):
    """A source whose rows may each cover a coarse period, spread evenly over its days."""

    columns: _DateColumns
    # None: a row belongs to the week its date falls in (daily or weekly rows).
    period: Period | None = None
    # strftime codes of columns.date when it is not ISO 8601, e.g. "%d/%m/%Y" for 20/01/2024
    date_format: str | None = None

    @field_validator("date_format")
    @classmethod
    def _whole_dates(cls, value: str | None) -> str | None:
        """A format must name the day, month and year: read back, a date is itself."""
        if value is None:
            return value
        day = dt.datetime(2024, 1, 20)
        try:
            same = dt.datetime.strptime(day.strftime(value), value) == day
        except ValueError:
            same = False
        if not same:
            raise ValueError(
                f"date_format {value!r} does not read back a whole date (20 January 2024 "
                f"written with it is {day.strftime(value)!r}): use strftime codes for the day, "
                "month and year, e.g. '%d/%m/%Y' for 20/01/2024 or '%m/%d/%Y' for 01/20/2024"
            )
        return value

    @property
    def row_period(self) -> Period | None:
        """The period a row covers: ``period``, else what the year (and month) columns imply."""
        return self.period or self._dated_by

    @property
    def _dated_by(self) -> Period | None:
        if self.columns.year is None:
            return None
        return "month" if self.columns.month is not None else "year"

    @model_validator(mode="after")
    def _period_fits_columns(self) -> _PeriodicSource:
        implied = self._dated_by
        if implied is not None and self.period not in (None, implied):
            raise ValueError(
                f"period is {self.period!r}, but the columns date each row by {implied} "
                f"(columns.year{' and columns.month' if implied == 'month' else ''}); set "
                f"period: {implied} or remove it"
            )
        return self


class _SpendInUnits(_Strict):
    # The money one spend number in the file stands for: 1000 when it gives spend in
    # thousands. Spend and revenue must be in the same money, or budgets, ROAS and marginal
    # returns in the allocation and the report are off by this factor.
    spend_unit: float = Field(1.0, gt=0)


class SpendSource(_PeriodicSource, _SpendInUnits):
    path: str
    layout: Literal["long", "wide"] = "long"
    columns: SpendColumns = SpendColumns()
    # Read a blank spend (and, long layout, a channel's missing week) as 0. Off by default:
    # a gap in a feed is more often lost data than money not spent.
    blank_as_zero: bool = False


class PanelColumns(_DateColumns):
    """Columns of a ready weekly panel file (the second input route)."""

    conversions: str | None = None
    revenue: str | None = None
    market: str | None = None  # long layout: one row per market and week (project.markets)

    @model_validator(mode="after")
    def _has_target(self) -> PanelColumns:
        if self.date is None and self.year is None:
            raise ValueError("map 'date' (or 'year' and 'month') to the column dating each row")
        if self.conversions is None and self.revenue is None:
            raise ValueError("map at least one of 'conversions' or 'revenue' to a column")
        return self


class PanelSource(_PeriodicSource, _SpendInUnits):
    path: str
    columns: PanelColumns
    blank_as_zero: bool = False  # read blank spend, touches and targets as 0


class SourcesSection(_Strict):
    route: Literal["events", "panel"] = "events"
    events: EventsSource | None = None
    spend: SpendSource | None = None
    panel: PanelSource | None = None

    @model_validator(mode="after")
    def _route_complete(self) -> SourcesSection:
        if self.route == "events" and self.events is None:
            raise ValueError("route 'events' needs an 'events' source")
        if self.route == "panel" and self.panel is None:
            raise ValueError("route 'panel' needs a 'panel' source")
        return self


class ChannelConfig(_Strict):
    """A paid channel: its touchpoints in the event log and where its spend comes from."""

    touchpoints: list[str] = []
    cost_per_touch: NonNegative | None = None  # stands in where no spend feed exists
    spend_column: str | None = None  # wide spend layout and panel route
    touches_column: str | None = None  # panel route: e.g. impressions


class ControlSeries(_Strict):
    column: str
    categorical: bool = False
    baseline: str | None = None  # categorical level that gets no dummy column


class ControlsSection(_Strict):
    path: str | None = None  # events route: a weekly file; panel route: read from the panel
    date_column: str = "week_start"
    series: dict[str, ControlSeries] = {}
    blank_as_zero: bool = False  # read a blank numeric control as 0 (e.g. a holiday flag)


class Gates(_Strict):
    """Convergence thresholds a fit must meet (Vehtari et al. 2021 recommendations by default).

    The one gates type: the config, the blocking checks, the export and the report all read it.
    """

    max_r_hat: float = Field(1.01, gt=1.0)
    min_ess_bulk: NonNegative = 400
    min_ess_tail: NonNegative = 400
    max_divergences: int = Field(0, ge=0)


class ModelSection(_Strict):
    """Read by stage 1 (estimation)."""

    target: Literal["conversions", "revenue"] = "conversions"
    # Default: poisson for conversions, student_t for revenue (money is not a count).
    likelihood: Literal[LIKELIHOODS] = "poisson"  # type: ignore[valid-type]
    adstock: Literal[tuple(ADSTOCKS)] = "geometric"  # type: ignore[valid-type]
    adstock_max_lag: int = Field(8, ge=1, le=52)
    saturation: Literal[tuple(SATURATIONS)] = "logistic"  # type: ignore[valid-type]
    fourier_order: int = Field(2, ge=0, le=10)
    # The most weeks fitted (a trailing window as of each month); None: every complete week.
    window_weeks: int | None = Field(None, ge=26)
    holdout_weeks: int = Field(0, ge=0)
    chains: int = Field(4, ge=1, le=64)
    warmup: int = Field(1000, ge=10)
    draws: int = Field(1000, ge=10)
    seed: int = 0
    # NUTS: a higher target acceptance takes smaller steps (fewer divergences, slower fits).
    target_accept: float = Field(0.85, gt=0.5, lt=1.0)
    max_tree_depth: int = Field(10, ge=4, le=15)  # trajectories of up to 2**depth steps
    # A full (dense) mass matrix adapts to correlated parameters. None: dense for a single
    # market's fit, diagonal for a pooled one, whose ~200-600 parameters make a dense matrix
    # costly to adapt (8 markets x 156 weeks x 5 channels: 4x the time for the same ESS/s).
    dense_mass: bool | None = None
    # When a fit diverges or its chains disagree, refit with more careful settings
    # (core/model/ladder.py) before failing the gates.
    convergence_ladder: bool = True
    # Where NUTS runs (core/model/device.py): "auto" is the GPU when JAX has one, else the CPU;
    # on a GPU at least 16 chains run in one vectorised program, with fewer draws per chain.
    device: Literal["auto", "cpu", "gpu"] = "auto"
    export_draws: int = Field(500, ge=10)
    priors: dict[str, Any] = {}
    gates: Gates = Gates()
    # Only with project.markets. "hierarchical": one fit per month of every market together;
    # channel effects, adstock decays and saturation are drawn from population distributions
    # (a small market borrows strength from the others), baselines, trend, seasonality and
    # controls stay each market's own. "independent": each market fitted alone, per
    # market x month.
    markets: Literal["independent", "hierarchical"] = "hierarchical"

    @model_validator(mode="before")
    @classmethod
    def _likelihood_of_the_target(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("target") == "revenue" and "likelihood" not in data:
            return {**data, "likelihood": "student_t"}
        return data

    @model_validator(mode="after")
    def _window_fits(self) -> ModelSection:
        if self.window_weeks is not None and self.window_weeks < weeks_needed(self.holdout_weeks):
            raise ValueError(
                f"window_weeks {self.window_weeks} with holdout_weeks {self.holdout_weeks} "
                f"leaves {self.window_weeks - self.holdout_weeks} week(s) to fit; the model "
                f"needs at least {MIN_FIT_WEEKS}: raise window_weeks or lower holdout_weeks"
            )
        return self

    @field_validator("priors")
    @classmethod
    def _priors_known(cls, priors: dict[str, Any]) -> dict[str, Any]:
        """Refused on load, so ``validate`` catches a misspelt prior rather than the fit does:
        at ``model.priors.<name>``, with the valid names or parameters (docs/priors.md)."""
        problems = prior_problems(priors)
        if problems:
            raise ValidationError.from_exception_data(
                "priors",
                [
                    InitErrorDetails(type=PydanticCustomError("prior", text), loc=at, input=priors)
                    for at, text in problems
                ],
            )
        return priors

    @property
    def weeks_needed(self) -> int:
        """Complete weeks a fit needs (to fit, plus those held out)."""
        return weeks_needed(self.holdout_weeks)

    def dense_mass_for(self, pooled: bool) -> bool:
        """``dense_mass``, or when unset what suits the fit: dense for one market, diagonal for
        a pooled fit of several."""
        return (not pooled) if self.dense_mass is None else self.dense_mass


class ChannelBounds(_Strict):
    min: NonNegative | None = None
    max: NonNegative | None = None


class OptimisationSection(_Strict):
    """Read by stage 2 (allocation)."""

    # Money over the horizon (per market when project.markets is set); None = what the data
    # spent over the last horizon_weeks, so the default plan redistributes today's money.
    budget: float | None = Field(None, gt=0)
    # Across markets: the budget split over market x channel; None = what the markets spend
    # now over the horizon (the same money, redistributed).
    total_budget: float | None = Field(None, gt=0)
    horizon_weeks: int = Field(13, ge=1)
    # Alternative budgets; None = 80%, 90%, 110% and 125% of the main budget.
    scenarios: list[Annotated[float, Field(gt=0)]] | None = None
    bounds_band: float = Field(0.5, ge=0)
    bounds: dict[str, ChannelBounds] = {}
    locked: list[str] = []
    objective: Literal["mean", "quantile", "mean_minus_k_sd"] = "mean"
    quantile: float = Field(0.1, gt=0, lt=1)
    risk_k: NonNegative = 1.0
    population: int = Field(100, ge=4)
    generations: int = Field(200, ge=1)
    seed: int = 0


class ExperimentsSection(_Strict):
    """Randomised campaign lift tests (test vs control cohorts), read by ``campaign_lift_tests``."""

    lift_tests: str | None = None  # a CSV/Parquet file in the lift-test contract; None: none
    calibrate: bool = True  # tests with a spend_change enter the model's likelihood


class CustomerValueSection(_Strict):
    """Per-channel customer value (LTV, CAC, LTV:CAC, payback) from the journey log."""

    horizon_days: int = Field(180, ge=1)  # value counted this long after acquisition
    attribution: Literal["first_touch", "last_touch"] = "first_touch"
    bootstrap: int = Field(1000, ge=100)  # replicates for the intervals
    seed: int = 0


class ReportSection(_Strict):
    # Share of total sales the data can see. None: 1.0 on the panel route (a panel of total
    # sales); required on the events route, where a journey log usually sees a small share.
    attributable_share: float | None = Field(None, gt=0, le=1)
    # A plan whose probability of beating the current one is lower is labelled "not
    # recommended - uncertain" in the report.
    min_uplift_probability: float = Field(0.9, gt=0, le=1)
    currency: str = ""  # symbol shown before money amounts
    formats: list[Literal["html", "csv", "json"]] = ["html", "csv", "json"]
    output_dir: str = "storage/reports"


class ProjectConfig(_Strict):
    project: ProjectSection
    sources: SourcesSection
    channels: dict[str, ChannelConfig]
    controls: ControlsSection = ControlsSection()
    model: ModelSection = ModelSection()
    optimisation: OptimisationSection = OptimisationSection()
    experiments: ExperimentsSection = ExperimentsSection()
    customer_value: CustomerValueSection = CustomerValueSection()
    report: ReportSection = ReportSection()

    @model_validator(mode="after")
    def _consistent(self) -> ProjectConfig:
        if not self.channels:
            raise ValueError("channels: configure at least one paid channel")
        seen: dict[str, str] = {}
        for name, channel in self.channels.items():
            for touchpoint in channel.touchpoints:
                if touchpoint in seen:
                    raise ValueError(
                        f"channels: touchpoint {touchpoint!r} is mapped to both "
                        f"{seen[touchpoint]!r} and {name!r}"
                    )
                seen[touchpoint] = name
        if self.sources.route == "events":
            if self.project.markets:
                raise ValueError("project.markets needs the panel route (a market column)")
            self._check_events_route()
        else:
            self._check_panel_route()
        calibrating = self.experiments.lift_tests is not None and self.experiments.calibrate
        if calibrating and self.model.target != "conversions":
            raise ValueError(
                "experiments.calibrate: lift tests measure conversions, but model.target is "
                f"{self.model.target!r}; set calibrate: false or fit conversions"
            )
        if calibrating and self.project.markets:
            raise ValueError(
                "experiments.calibrate: lift tests name no market, so they cannot calibrate "
                "fits with project.markets; set calibrate: false"
            )
        unknown = [
            c
            for c in [*self.optimisation.bounds, *self.optimisation.locked]
            if c not in self.channels
        ]
        if unknown:
            raise ValueError(
                f"optimisation: unknown channel(s) {unknown}; configured: {list(self.channels)}"
            )
        return self

    def _check_events_route(self) -> None:
        spend = self.sources.spend
        for name, channel in self.channels.items():
            if channel.cost_per_touch is not None:
                if not channel.touchpoints:
                    raise ValueError(
                        f"channels.{name}: cost_per_touch needs the channel's touchpoints"
                    )
                continue
            if spend is None:
                raise ValueError(
                    f"channels.{name}: no spend feed is configured, so set cost_per_touch"
                )
            if spend.layout == "wide" and channel.spend_column is None:
                raise ValueError(f"channels.{name}: the spend file is wide, so set spend_column")
        if self.controls.series and self.controls.path is None:
            raise ValueError("controls: the events route reads controls from 'path'; set it")
        if self.report.attributable_share is None:
            raise ValueError(
                "report.attributable_share: required on the events route: the share of total "
                "sales that the journey log can see (e.g. 0.05 when it sees 5%); money claims "
                "in the report are scaled to it"
            )

    def _check_panel_route(self) -> None:
        has_column = self.sources.panel.columns.market is not None
        if has_column != bool(self.project.markets):
            raise ValueError(
                "project.markets and sources.panel.columns.market go together: list the markets "
                "to fit and name the panel column that holds them"
            )
        for name, channel in self.channels.items():
            if channel.spend_column is None:
                raise ValueError(f"channels.{name}: the panel route needs spend_column")
        if self.controls.path is not None:
            raise ValueError(
                "controls: the panel route reads controls from the panel file; remove 'path'"
            )

    def month_range(self, today: dt.date | None = None) -> tuple[str, str]:
        """First and last configured data month (inclusive), as YYYY-MM."""
        end = self.project.partitions.end_month
        if end is None:
            end = previous_month(today or dt.date.today())
        return self.project.partitions.start_month, end

    @property
    def pools_markets(self) -> bool:
        """Markets fitted as one hierarchical model per month (``model.markets``)."""
        return bool(self.project.markets) and self.model.markets == "hierarchical"

    @property
    def attributable_share(self) -> float:
        """The report's scope: the configured share, or 1.0 for a panel of total sales."""
        share = self.report.attributable_share
        return 1.0 if share is None else share

    def touchpoint_channel(self) -> dict[str, str]:
        """Map of touchpoint -> paid channel; touchpoints not in it are organic."""
        return {tp: name for name, ch in self.channels.items() for tp in ch.touchpoints}


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "<top level>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and where it is nested)"
        elif item["type"] == "missing":
            message = "required key is missing"
        lines.append(f"  {loc}: {message}")
    return "\n".join(lines)


def parse_config(document: Any, source: str = "<config>") -> ProjectConfig:
    """Validate an already-parsed YAML document."""
    if not isinstance(document, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(document).__name__}"
        )
    try:
        return ProjectConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(source, error)) from None


class DuplicateKeyError(yaml.YAMLError):
    """A mapping in the YAML repeats a key; plain YAML loaders keep the last value silently."""

    def __init__(self, key: object, first: int, again: int) -> None:
        super().__init__(
            f"duplicate key {key!r} at line {again} (already at line {first}); only one "
            "value would be kept, so remove or rename one of them"
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated within one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<' overrides are legitimate
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: let SafeLoader report it
                break
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> ProjectConfig:
    """Read and validate a YAML config file (safe loading: no code runs from it; a key repeated
    within a mapping is refused instead of the last one silently winning)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: config file is not valid UTF-8 ({error.reason})") from None
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except DuplicateKeyError as error:
        raise ConfigError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {error}") from None
    return parse_config(document, str(path))


def resolve_project_path(root: Path, relative: str, *, allow_outside: bool = False) -> Path:
    """Resolve a path from config against the project root, refusing escapes by default.

    A config that points outside the project (``../secrets``, ``/etc``) is more likely a mistake
    or an attack than an intent; ``project.allow_paths_outside_root`` opts in explicitly.
    """
    root = root.resolve()
    candidate = (root / relative).resolve()
    if not allow_outside and not candidate.is_relative_to(root):
        raise ConfigError(
            f"path {relative!r} resolves to {candidate}, outside the project root {root}; "
            "set project.allow_paths_outside_root: true to allow it"
        )
    return candidate
