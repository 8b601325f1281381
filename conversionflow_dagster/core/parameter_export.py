"""The parameter export: the only thing stage 2 reads from stage 1 (see docs/contracts.md).

Stage 2 may run long after stage 1, on another machine, from a file a person may have edited, so
every field is checked on write and on read, and each problem is reported with the JSON path of
the offending field and what was expected, e.g.
``export.json: channels[2].current_weekly_spend: expected a finite number >= 0, got -3``.

Unknown keys are tolerated so a newer stage 1 can add information without a schema change: they
are kept inside ``model``, ``data_window`` and ``diagnostics`` and dropped elsewhere. The one
exception is ``draws``, where an unexpected array means the file was written for another
saturation type.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conversionflow_dagster.core.atomic import write_text_atomic
from conversionflow_dagster.core.errors import ContractError

SCHEMA_VERSION = 1
TARGETS = ("conversions", "revenue")
ADSTOCK_TYPES = ("geometric",)
# Per-draw parameters for each saturation type, in the order they are written.
DRAW_PARAMETERS: dict[str, tuple[str, ...]] = {
    "logistic": ("beta", "adstock_decay", "saturation_lam"),
    "hill": ("beta", "adstock_decay", "hill_k", "hill_n"),
}
# Valid range of each parameter: (lower, lower inclusive, upper or None, upper inclusive).
PARAMETER_RANGES: dict[str, tuple[float, bool, float | None, bool]] = {
    "beta": (0.0, True, None, False),
    "adstock_decay": (0.0, True, 1.0, False),
    "saturation_lam": (0.0, False, None, False),
    "hill_k": (0.0, False, None, False),
    "hill_n": (0.0, False, None, False),
}
REQUIRED_SUMMARY = ("mean", "sd", "hdi_3%", "hdi_97%")
OPTIONAL_SUMMARY = ("r_hat", "ess_bulk", "ess_tail")  # null when not computable (one chain)
ROAS_FIELDS = ("mean", "hdi_3%", "hdi_97%")  # null when the channel had no spend in the window
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


def _get(obj: Mapping[str, Any], key: str, path: str, expected: str) -> Any:
    if key not in obj:
        raise _Invalid(_join(path, key), f"missing (expected {expected})")
    return obj[key]


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _range_text(lower: float, closed: bool, upper: float | None, upper_closed: bool) -> str:
    if upper is None:
        return f"{'>=' if closed else '>'} {lower:g}"
    return f"in {'[' if closed else '('}{lower:g}, {upper:g}{']' if upper_closed else ')'}"


def _in_range(
    x: float | np.ndarray, lower: float, closed: bool, upper: float | None, upper_closed: bool
) -> bool | np.ndarray:
    """Elementwise range test for a number or an array."""
    above = np.greater_equal(x, lower) if closed else np.greater(x, lower)
    if upper is None:
        return above
    return above & (np.less_equal(x, upper) if upper_closed else np.less(x, upper))


def _object(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    value = _get(obj, key, path, "a JSON object")
    if not isinstance(value, Mapping):
        raise _expected(_join(path, key), "a JSON object", value)
    return dict(value)


def _number(
    obj: Mapping[str, Any],
    key: str,
    path: str,
    bounds: tuple[float, bool, float | None, bool] | None = None,
    *,
    nullable: bool = False,
) -> float | None:
    expected = "a finite number" + (f" {_range_text(*bounds)}" if bounds else "")
    expected += " or null" if nullable else ""
    value = _get(obj, key, path, expected)
    if value is None and nullable:
        return None
    ok = _is_number(value) and math.isfinite(value)
    if not ok or (bounds and not _in_range(float(value), *bounds)):
        raise _expected(_join(path, key), expected, value)
    return float(value)


def _integer(obj: Mapping[str, Any], key: str, path: str, minimum: int) -> int:
    expected = f"an integer >= {minimum}"
    value = _get(obj, key, path, expected)
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise _expected(_join(path, key), expected, value)
    return int(value)


def _choice(obj: Mapping[str, Any], key: str, path: str, choices: tuple[str, ...]) -> str:
    expected = "one of " + ", ".join(repr(c) for c in choices)
    value = _get(obj, key, path, expected)
    if not isinstance(value, str) or value not in choices:
        raise _expected(_join(path, key), expected, value)
    return value


def _text(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = _get(obj, key, path, "a non-empty string")
    if not isinstance(value, str) or not value:
        raise _expected(_join(path, key), "a non-empty string", value)
    return value


def _boolean(obj: Mapping[str, Any], key: str, path: str) -> bool:
    value = _get(obj, key, path, "true or false")
    if not isinstance(value, bool):
        raise _expected(_join(path, key), "true or false", value)
    return value


def _timestamp(obj: Mapping[str, Any], key: str, path: str, kind: str) -> str:
    """An ISO date (``kind="date"``) or date-time string, returned unchanged."""
    expected = "an ISO date (YYYY-MM-DD)" if kind == "date" else "an ISO 8601 date-time"
    value = _get(obj, key, path, expected)
    parse = dt.date.fromisoformat if kind == "date" else dt.datetime.fromisoformat
    try:
        parse(value)
    except (TypeError, ValueError):
        raise _expected(_join(path, key), expected, value) from None
    return value


def _plain(value: dict[str, Any], path: str) -> dict[str, Any]:
    """A deep copy made of JSON values only, so the export cannot change under its reader."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise _Invalid(path, f"expected JSON values only ({error})") from None


def _schema_version(doc: Mapping[str, Any]) -> int:
    version = _integer(doc, "schema_version", "", 1)
    if version > SCHEMA_VERSION:
        raise _Invalid(
            "schema_version",
            f"the file was written by a newer conversionflow (schema_version {version}); this "
            f"version reads schema_version <= {SCHEMA_VERSION}: upgrade conversionflow or "
            "re-run stage 1 with this version",
        )
    return version


def _model(doc: Mapping[str, Any]) -> dict[str, Any]:
    model = _object(doc, "model", "")
    _choice(model, "target", "model", TARGETS)
    _text(model, "likelihood", "model")
    adstock = _object(model, "adstock", "model")
    _choice(adstock, "type", "model.adstock", ADSTOCK_TYPES)
    _integer(adstock, "max_lag", "model.adstock", 1)
    _boolean(adstock, "normalize", "model.adstock")
    saturation = _object(model, "saturation", "model")
    _choice(saturation, "type", "model.saturation", tuple(DRAW_PARAMETERS))
    return _plain(model, "model")


def _data_window(doc: Mapping[str, Any]) -> dict[str, Any]:
    window = _object(doc, "data_window", "")
    start = _timestamp(window, "start", "data_window", "date")
    end = _timestamp(window, "end", "data_window", "date")
    if dt.date.fromisoformat(end) < dt.date.fromisoformat(start):
        raise _Invalid("data_window.end", f"expected a date on or after start {start}, got {end}")
    _integer(window, "n_weeks", "data_window", 1)
    return _plain(window, "data_window")


def _list(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = _get(obj, key, path, "a non-empty list")
    if not isinstance(value, list) or not value:
        raise _expected(_join(path, key), "a non-empty list", value)
    return value


def _summary(obj: Mapping[str, Any], path: str, parameter: str) -> dict[str, float | None]:
    stats = _object(obj, parameter, path)
    where = _join(path, parameter)
    summary: dict[str, float | None] = {k: _number(stats, k, where) for k in REQUIRED_SUMMARY}
    if summary["sd"] < 0:
        raise _expected(_join(where, "sd"), "a finite number >= 0", summary["sd"])
    if summary["hdi_3%"] > summary["hdi_97%"]:
        raise _Invalid(
            _join(where, "hdi_97%"),
            f"expected a number >= hdi_3% ({summary['hdi_3%']}), got {summary['hdi_97%']}",
        )
    for key in OPTIONAL_SUMMARY:
        summary[key] = _number(stats, key, where, (0.0, True, None, False), nullable=True)
    return summary


def _channel(entry: Any, path: str, parameters: tuple[str, ...]) -> ChannelExport:
    if not isinstance(entry, Mapping):
        raise _expected(path, "a JSON object", entry)
    spend = _number(entry, "current_weekly_spend", path, (0.0, True, None, False))
    summaries = _object(entry, "parameters", path)
    where = _join(path, "parameters")
    roas = _object(entry, "roas", path)
    return ChannelExport(
        name=_text(entry, "name", path),
        current_weekly_spend=spend,
        parameters={p: _summary(summaries, where, p) for p in parameters},
        roas={
            k: _number(roas, k, _join(path, "roas"), (0.0, True, None, False), nullable=True)
            for k in ROAS_FIELDS
        },
    )


def _channels(doc: Mapping[str, Any], parameters: tuple[str, ...]) -> tuple[ChannelExport, ...]:
    entries = _list(doc, "channels", "")
    channels = tuple(_channel(e, f"channels[{i}]", parameters) for i, e in enumerate(entries))
    seen: dict[str, int] = {}
    for i, channel in enumerate(channels):
        if channel.name in seen:
            raise _Invalid(
                f"channels[{i}].name",
                f"duplicate channel name {channel.name!r} (also channels[{seen[channel.name]}])",
            )
        seen[channel.name] = i
    return channels


def _scales(doc: Mapping[str, Any], names: tuple[str, ...]) -> Scales:
    scales = _object(doc, "scales", "")
    positive = (0.0, False, None, False)
    target = _number(scales, "target", "scales", positive)
    spend = _object(scales, "spend", "scales")
    for key in spend:
        if key not in names:
            raise _Invalid(_join("scales.spend", key), "not a channel listed in channels")
    return Scales(target, {name: _number(spend, name, "scales.spend", positive) for name in names})


def _draw_matrix(value: Any, path: str, n: int, names: tuple[str, ...]) -> np.ndarray:
    """A (n, C) float array from a list of rows (or an array), with element-precise errors."""
    c = len(names)
    shape_text = f"{n} rows of {c} numbers (one row per draw, one column per channel)"
    if not isinstance(value, list | np.ndarray):
        raise _expected(path, shape_text, value)
    if len(value) != n:
        raise _Invalid(path, f"expected {shape_text}, got {len(value)} rows")
    array = np.asarray(value, dtype=object) if isinstance(value, np.ndarray) else None
    for i, row in enumerate(value if array is None else array):
        if not isinstance(row, list | np.ndarray) or len(row) != c:
            raise _expected(f"{path}[{i}]", f"a list of {c} numbers (one per channel)", row)
        for j, x in enumerate(row):
            if not _is_number(x):
                raise _expected(f"{path}[{i}][{j}]", "a finite number", x)
    return np.array(value, dtype=float)


def _draws(
    doc: Mapping[str, Any], parameters: tuple[str, ...], saturation: str, names: tuple[str, ...]
) -> dict[str, np.ndarray]:
    draws = _object(doc, "draws", "")
    n = _integer(draws, "n", "draws", 1)
    for key in draws:
        if key != "n" and key not in parameters:
            raise _Invalid(
                _join("draws", key),
                f"not a parameter of {saturation} saturation (expected {', '.join(parameters)})",
            )
    result = {}
    for name in parameters:
        path = _join("draws", name)
        array = _draw_matrix(_get(draws, name, "draws", "a list of rows"), path, n, names)
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


def _diagnostics(doc: Mapping[str, Any]) -> dict[str, Any]:
    diagnostics = _object(doc, "diagnostics", "")
    non_negative = (0.0, True, None, False)
    for key in ("max_r_hat", "min_ess_bulk", "min_ess_tail"):
        _number(diagnostics, key, "diagnostics", non_negative, nullable=True)
    _integer(diagnostics, "divergences", "diagnostics", 0)
    _boolean(diagnostics, "passed", "diagnostics")
    return _plain(diagnostics, "diagnostics")


def validate_export(doc: Mapping[str, Any], source: str = "<export>") -> ParameterExport:
    """Check a decoded export against the contract; raise ContractError naming the field."""
    try:
        if not isinstance(doc, Mapping):
            raise _expected("(top level)", "a JSON object", doc)
        version = _schema_version(doc)
        model = _model(doc)
        saturation = model["saturation"]["type"]
        parameters = DRAW_PARAMETERS[saturation]
        channels = _channels(doc, parameters)
        names = tuple(c.name for c in channels)
        export = ParameterExport(
            schema_version=version,
            created_at=_timestamp(doc, "created_at", "", "datetime"),
            model=model,
            data_window=_data_window(doc),
            scales=_scales(doc, names),
            channels=channels,
            diagnostics=_diagnostics(doc),
            draws=_draws(doc, parameters, saturation, names),
        )
        _check_column_order(export.draws, channels)
    except _Invalid as problem:
        raise ContractError(f"{source}: {problem}") from None
    return export


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
