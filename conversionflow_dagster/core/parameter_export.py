"""The parameter export: the only thing stage 2 reads from stage 1 (see docs/contracts.md).

Stage 2 may run long after stage 1, on another machine, from a file a person may have edited, so
every field is checked on write and on read, and each problem is reported with the JSON path of
the offending field and what was expected, e.g.
``export.json: channels[2].current_weekly_spend: expected a finite number >= 0, got -3``.

Unknown keys are tolerated so a newer stage 1 can add information without a schema change: they
are kept inside ``model``, ``data_window`` and ``diagnostics`` and dropped elsewhere. The one
exception is ``draws``, where an unexpected array means the file was written for another
saturation type.

Each section is a pydantic model, and the whole document one model per saturation type (its
parameters name the summaries and the draws); what relates one section to another (unique
channel names, a spend scale per channel, draws shaped (n, channels) and in channel order) is
checked after, in ``_export``. Either way only the first problem is reported, in the words above.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from conversionflow_dagster.core.atomic import write_text_atomic
from conversionflow_dagster.core.errors import ContractError
from conversionflow_dagster.core.model.transforms import (
    ADSTOCKS,
    PARAMETERS,
    SATURATIONS,
    transform_parameters,
)

SCHEMA_VERSION = 1
TARGETS = ("conversions", "revenue")
ADSTOCK_TYPES = tuple(ADSTOCKS)
# Per-draw parameters of each (adstock, saturation) pair, in the order they are written.
DRAW_PARAMETERS: dict[tuple[str, str], tuple[str, ...]] = {
    (adstock, saturation): ("beta", *transform_parameters(adstock, saturation))
    for adstock in ADSTOCKS
    for saturation in SATURATIONS
}
# Valid range of each parameter: (lower, lower inclusive, upper or None, upper inclusive).
PARAMETER_RANGES: dict[str, tuple[float, bool, float | None, bool]] = {
    "beta": (0.0, True, None, False),
    **{name: p.bounds for name, p in PARAMETERS.items()},
}
# A draws column whose median lies this far outside its channel's 94% HDI (as a share of the
# HDI width, plus an absolute allowance for rounded summaries) belongs to another channel.
ORDER_SLACK_WIDTH = 0.5
ORDER_SLACK_ABS = 0.005


@dataclass(frozen=True)
class ChannelExport:
    """Posterior summary of one channel and the weekly spend the plan starts from."""

    name: str
    current_weekly_spend: float
    parameters: dict[str, dict[str, float | None]]  # parameter -> summary field -> value
    roas: dict[str, float | None]


@dataclass(frozen=True)
class Scales:
    """Divisors the model was fitted with: target units and spend per channel."""

    target: float
    spend: dict[str, float]


@dataclass(frozen=True)
class ParameterExport:
    """A validated export; ``draws`` arrays are read-only, shape (n_draws, n_channels)."""

    schema_version: int
    created_at: str
    model: dict[str, Any]
    data_window: dict[str, Any]
    scales: Scales
    channels: tuple[ChannelExport, ...]
    diagnostics: dict[str, Any]
    draws: dict[str, np.ndarray]

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def n_draws(self) -> int:
        return next(iter(self.draws.values())).shape[0]

    @property
    def saturation(self) -> str:
        return self.model["saturation"]["type"]

    @property
    def current_weekly_spend(self) -> np.ndarray:
        """(C,) current weekly spend in ``channels`` order."""
        return np.array([c.current_weekly_spend for c in self.channels])

    @property
    def spend_scale(self) -> np.ndarray:
        """(C,) spend scale in ``channels`` order."""
        return np.array([self.scales.spend[name] for name in self.channel_names])


class _Invalid(Exception):
    """A problem at a JSON path; turned into a ContractError naming the source."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_%]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _show(value: Any) -> str:
    """A short rendering of a JSON value for 'got ...'."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return repr(float(value)) if isinstance(value, np.floating) else repr(value)
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(path: str, expected: str, value: Any) -> _Invalid:
    return _Invalid(path, f"expected {expected}, got {_show(value)}")


# --- the document's fields -----------------------------------------------------------------------
# Every leaf type carries, as its description, the words that error messages use for what it
# expects; a field without one is a nested object. Leaves are strict (no "12" for 12, no true
# for 1); objects accept any mapping, as JSON decoders and hand-built documents provide.


def _number(description: str, **bounds: float) -> Any:
    return Annotated[
        float, Field(strict=True, allow_inf_nan=False, description=description, **bounds)
    ]


def _integer(minimum: int) -> Any:
    return Annotated[int, Field(strict=True, ge=minimum, description=f"an integer >= {minimum}")]


def _choice(choices: tuple[str, ...]) -> Any:
    expected = "one of " + ", ".join(repr(c) for c in choices)
    return Annotated[Literal[choices], Field(description=expected)]


def _timestamp(parse: Callable[[str], object], description: str) -> Any:
    """An ISO date or date-time string that ``parse`` accepts, kept as written."""

    def check(value: str) -> str:
        parse(value)
        return value

    return Annotated[str, Field(strict=True, description=description), AfterValidator(check)]


def _lists(value: Any) -> Any:
    """Draws may come as NumPy arrays from a stage-1 caller; validate them as lists."""
    return value.tolist() if isinstance(value, np.ndarray) else value


_Finite = _number("a finite number")
_NonNegative = _number("a finite number >= 0", ge=0)
_Positive = _number("a finite number > 0", gt=0)
_NonNegativeOrNull = Annotated[
    _NonNegative | None, Field(description="a finite number >= 0 or null")
]
_NonNegativeInt = _integer(0)
_PositiveInt = _integer(1)
_Text = Annotated[str, Field(strict=True, min_length=1, description="a non-empty string")]
_Target = _choice(TARGETS)
_AdstockType = _choice(ADSTOCK_TYPES)
_SaturationType = _choice(tuple(SATURATIONS))
_Flag = Annotated[bool, Field(strict=True, description="true or false")]
_Date = _timestamp(dt.date.fromisoformat, "an ISO date (YYYY-MM-DD)")
_DateTime = _timestamp(dt.datetime.fromisoformat, "an ISO 8601 date-time")
# One draws array: NaN and infinities pass here so that the range check names them precisely.
_Draw = Annotated[float, Field(strict=True, description="a finite number")]
_Row = Annotated[
    list[_Draw],
    Field(strict=True, description="a list of numbers (one per channel)"),
    BeforeValidator(_lists),
]
_Matrix = Annotated[
    list[_Row],
    Field(strict=True, description="a list of rows (one row per draw, one column per channel)"),
    BeforeValidator(_lists),
]


def _problem(text: str) -> PydanticCustomError:
    """A check's own complete message (``_validated`` words all other errors)."""
    return PydanticCustomError("contract", "{problem}", {"problem": text})


class _Section(BaseModel):
    """A JSON object of the contract; unknown keys are dropped."""


class _Kept(BaseModel):
    """A JSON object whose unknown keys are kept: a newer stage 1 may add information here."""

    model_config = ConfigDict(extra="allow")


class _Adstock(_Kept):
    type: _AdstockType
    max_lag: _PositiveInt
    normalize: _Flag


class _Saturation(_Kept):
    type: _SaturationType


class _Model(_Kept):
    target: _Target
    likelihood: _Text
    adstock: _Adstock
    saturation: _Saturation


class _Header(_Section):
    """What a reader checks first: can it read the file, and which parameters must it hold."""

    schema_version: _PositiveInt
    model: _Model

    @field_validator("schema_version")
    @classmethod
    def _readable(cls, version: int) -> int:
        if version > SCHEMA_VERSION:
            raise _problem(
                f"the file was written by a newer conversionflow (schema_version {version}); "
                f"this version reads schema_version <= {SCHEMA_VERSION}: upgrade conversionflow "
                "or re-run stage 1 with this version"
            )
        return version


class _DataWindow(_Kept):
    start: _Date
    end: _Date
    n_weeks: _PositiveInt

    @field_validator("end")
    @classmethod
    def _not_before_start(cls, end: str, info: ValidationInfo) -> str:
        start = info.data.get("start")
        if start is not None and dt.date.fromisoformat(end) < dt.date.fromisoformat(start):
            raise _problem(f"expected a date on or after start {start}, got {end}")
        return end


class _Scales(_Section):
    target: _Positive
    spend: dict[str, _Positive]


class _Summary(_Section):
    """Posterior summary of one parameter; r_hat and ESS are null when not computable."""

    mean: _Finite
    sd: _NonNegative
    hdi_3: _Finite = Field(alias="hdi_3%")
    hdi_97: _Finite = Field(alias="hdi_97%")
    r_hat: _NonNegativeOrNull
    ess_bulk: _NonNegativeOrNull
    ess_tail: _NonNegativeOrNull

    @field_validator("hdi_97")
    @classmethod
    def _ordered(cls, high: float, info: ValidationInfo) -> float:
        low = info.data.get("hdi_3")
        if low is not None and low > high:
            raise _problem(f"expected a number >= hdi_3% ({low}), got {high}")
        return high


class _Roas(_Section):
    """Null when the channel had no spend in the window."""

    mean: _NonNegativeOrNull
    hdi_3: _NonNegativeOrNull = Field(alias="hdi_3%")
    hdi_97: _NonNegativeOrNull = Field(alias="hdi_97%")


class _Diagnostics(_Kept):
    max_r_hat: _NonNegativeOrNull
    min_ess_bulk: _NonNegativeOrNull
    min_ess_tail: _NonNegativeOrNull
    divergences: _NonNegativeInt
    passed: _Flag


class _Draws(_Section):
    """``n`` and one array per parameter (declared per saturation type by ``_document_model``).

    Unknown keys are kept so that ``_export`` can name them against the saturation type.
    """

    model_config = ConfigDict(extra="allow")
    n: _PositiveInt


_ModelT = TypeVar("_ModelT", bound=BaseModel)
_SummariesT = TypeVar("_SummariesT", bound=BaseModel)
_DrawsT = TypeVar("_DrawsT", bound=_Draws)


class _Channel(_Section, Generic[_SummariesT]):
    name: _Text
    current_weekly_spend: _NonNegative
    parameters: _SummariesT
    roas: _Roas


class _Document(_Header, Generic[_SummariesT, _DrawsT]):
    created_at: _DateTime
    data_window: _DataWindow
    scales: _Scales
    channels: Annotated[
        list[_Channel[_SummariesT]],
        Field(strict=True, min_length=1, description="a non-empty list"),
    ]
    diagnostics: _Diagnostics
    draws: _DrawsT


@functools.cache
def _document_model(adstock: str, saturation: str) -> type[_Document]:
    """The document of one model form: its parameters name the summaries and the draws.

    Summaries of other parameters are dropped like any unknown key; other draws are refused.
    """
    parameters = DRAW_PARAMETERS[adstock, saturation]
    summaries = create_model(
        f"_{adstock}_{saturation}_summaries",
        __base__=_Section,
        **{p: (_Summary, ...) for p in parameters},
    )
    draws = create_model(
        f"_{adstock}_{saturation}_draws", __base__=_Draws, **{p: (_Matrix, ...) for p in parameters}
    )
    return _Document[summaries, draws]


def _described(model: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    """What the field at ``loc`` expects: the description its type carries."""
    annotation: Any = model
    description = None
    for part in loc:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {f.alias or name: f for name, f in annotation.model_fields.items()}
            if part not in fields:
                break
            field = fields[part]
        elif get_args(annotation):  # an item of list[X] or a value of dict[str, X]
            field = FieldInfo.from_annotation(get_args(annotation)[-1])
        else:
            break
        annotation, description = field.annotation, field.description
    return description or "a JSON object"


def _validated(model: type[_ModelT], doc: Any) -> _ModelT:
    """``doc`` as ``model``, or the first problem worded as path, expected and found."""
    try:
        return model.model_validate(doc)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
    path = functools.reduce(_join, first["loc"], "") or "(top level)"
    if first["type"] == "contract":
        raise _Invalid(path, first["msg"])
    expected = _described(model, first["loc"])
    if first["type"] == "missing":
        raise _Invalid(path, f"missing (expected {expected})")
    raise _expected(path, expected, first["input"])


# --- checks across sections ----------------------------------------------------------------------


def _range_text(lower: float, closed: bool, upper: float | None, upper_closed: bool) -> str:
    if upper is None:
        return f"{'>=' if closed else '>'} {lower:g}"
    return f"in {'[' if closed else '('}{lower:g}, {upper:g}{']' if upper_closed else ')'}"


def _in_range(
    x: np.ndarray, lower: float, closed: bool, upper: float | None, upper_closed: bool
) -> np.ndarray:
    above = np.greater_equal(x, lower) if closed else np.greater(x, lower)
    if upper is None:
        return above
    return above & (np.less_equal(x, upper) if upper_closed else np.less(x, upper))


def _plain(value: dict[str, Any], path: str) -> dict[str, Any]:
    """A deep copy made of JSON values only, so the export cannot change under its reader."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise _Invalid(path, f"expected JSON values only ({error})") from None


def _check_unique(names: tuple[str, ...]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise _Invalid(
                f"channels[{i}].name",
                f"duplicate channel name {name!r} (also channels[{seen[name]}])",
            )
        seen[name] = i


def _spend_scales(spend: dict[str, float], names: tuple[str, ...]) -> dict[str, float]:
    """One spend scale per channel, in ``channels`` order."""
    for key in spend:
        if key not in names:
            raise _Invalid(_join("scales.spend", key), "not a channel listed in channels")
    for name in names:
        if name not in spend:
            raise _Invalid(_join("scales.spend", name), "missing (expected a finite number > 0)")
    return {name: spend[name] for name in names}


def _draw_arrays(draws: _Draws, form: tuple[str, str], n_channels: int) -> dict[str, np.ndarray]:
    """Read-only (n, C) arrays, checked against ``n``, the channels and each parameter's range."""
    parameters = DRAW_PARAMETERS[form]
    saturation = form[1]
    unknown = next(iter(draws.model_extra or {}), None)
    if unknown is not None:
        raise _Invalid(
            _join("draws", unknown),
            f"not a parameter of {saturation} saturation (expected {', '.join(parameters)})",
        )
    result = {}
    for name in parameters:
        path = _join("draws", name)
        rows = getattr(draws, name)
        if len(rows) != draws.n:
            raise _Invalid(
                path,
                f"expected {draws.n} rows of {n_channels} numbers (one row per draw, one column "
                f"per channel), got {len(rows)} rows",
            )
        for i, row in enumerate(rows):
            if len(row) != n_channels:
                expected = f"a list of {n_channels} numbers (one per channel)"
                raise _expected(f"{path}[{i}]", expected, row)
        array = np.array(rows, dtype=float)
        bounds = PARAMETER_RANGES[name]
        ok = np.isfinite(array) & _in_range(array, *bounds)
        if not ok.all():
            i, j = np.argwhere(~ok)[0]
            raise _expected(
                f"{path}[{i}][{j}]", f"a finite number {_range_text(*bounds)}", array[i, j]
            )
        array.flags.writeable = False
        result[name] = array
    return result


def _check_column_order(
    draws: Mapping[str, np.ndarray], channels: tuple[ChannelExport, ...]
) -> None:
    """Each draws column must look like its channel's summary: its median lies in the HDI."""
    for name, array in draws.items():
        medians = np.median(array, axis=0)
        for j, channel in enumerate(channels):
            lo, hi = channel.parameters[name]["hdi_3%"], channel.parameters[name]["hdi_97%"]
            slack = ORDER_SLACK_WIDTH * (hi - lo) + ORDER_SLACK_ABS * max(1.0, abs(lo), abs(hi))
            if not lo - slack <= medians[j] <= hi + slack:
                raise _Invalid(
                    f"draws.{name}[:, {j}]",
                    f"column median {medians[j]:.4g} is outside channels[{j}] "
                    f"({channel.name!r}) parameters.{name} hdi_3%..hdi_97% [{lo:.4g}, {hi:.4g}]; "
                    "draws columns must follow the order of channels",
                )


def _export(document: _Document, form: tuple[str, str]) -> ParameterExport:
    """The public export, once the checks that relate one section to another pass."""
    names = tuple(c.name for c in document.channels)
    _check_unique(names)
    spend = _spend_scales(document.scales.spend, names)
    draws = _draw_arrays(document.draws, form, len(names))
    channels = tuple(
        ChannelExport(
            name=c.name,
            current_weekly_spend=c.current_weekly_spend,
            parameters=c.parameters.model_dump(by_alias=True),
            roas=c.roas.model_dump(by_alias=True),
        )
        for c in document.channels
    )
    _check_column_order(draws, channels)
    return ParameterExport(
        schema_version=document.schema_version,
        created_at=document.created_at,
        model=_plain(document.model.model_dump(), "model"),
        data_window=_plain(document.data_window.model_dump(), "data_window"),
        scales=Scales(document.scales.target, spend),
        channels=channels,
        diagnostics=_plain(document.diagnostics.model_dump(), "diagnostics"),
        draws=draws,
    )


def validate_export(doc: Mapping[str, Any], source: str = "<export>") -> ParameterExport:
    """Check a decoded export against the contract; raise ContractError naming the field."""
    try:
        model = _validated(_Header, doc).model
        form = (model.adstock.type, model.saturation.type)
        return _export(_validated(_document_model(*form), doc), form)
    except _Invalid as problem:
        raise ContractError(f"{source}: {problem}") from None


def to_document(export: ParameterExport) -> dict[str, Any]:
    """The JSON-able document of an export (arrays as nested lists), in contract key order."""
    return {
        "schema_version": export.schema_version,
        "created_at": export.created_at,
        "model": export.model,
        "data_window": export.data_window,
        "scales": {"target": export.scales.target, "spend": dict(export.scales.spend)},
        "channels": [
            {
                "name": c.name,
                "current_weekly_spend": c.current_weekly_spend,
                "parameters": c.parameters,
                "roas": c.roas,
            }
            for c in export.channels
        ],
        "diagnostics": export.diagnostics,
        "draws": {"n": export.n_draws, **{k: v.tolist() for k, v in export.draws.items()}},
    }


def _pretty(value: Any, depth: int = 0) -> str:
    """Indented JSON, except that lists of scalars (a draw row) stay on one line."""
    pad = "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(k)}: {_pretty(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"
    if isinstance(value, list) and any(isinstance(v, list | dict) for v in value):
        items = [pad + _pretty(v, depth + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * depth + "]"
    return json.dumps(value, allow_nan=False)


def write_export(export: ParameterExport | Mapping[str, Any], path: str | Path) -> Path:
    """Validate, then write atomically as pretty JSON; a failure leaves any old file intact."""
    path = Path(path)
    if not isinstance(export, ParameterExport):
        export = validate_export(export, str(path))
    document = to_document(export)
    validate_export(document, str(path))  # also catches an export built by hand, unvalidated
    write_text_atomic(path, _pretty(document) + "\n")
    return path


def read_export(path: str | Path) -> ParameterExport:
    """Read and validate an export file; every error names the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{path}: parameter export not found; run stage 1 first") from None
    except IsADirectoryError:
        raise ContractError(f"{path}: expected a JSON file, found a directory") from None
    except UnicodeDecodeError as error:
        raise ContractError(f"{path}: not UTF-8 text (byte offset {error.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise ContractError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    return validate_export(doc, str(path))
