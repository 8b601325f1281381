"""Write what ``conversionflow init`` inferred as a commented project config.

The comments carry the evidence behind each guess, so the file explains itself to a user who
did not watch the command run; keys the data decide (budget, scenarios) or only the user can
(the attributable share of journey data) are written commented out with what they mean.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from conversionflow_dagster.core.allocation.optimiser import DEFAULT_SCENARIO_FACTORS
from conversionflow_dagster.core.config import ProjectSection
from conversionflow_dagster.core.ingest.inference import (
    HORIZON_WEEKS,
    MONTH_STEM,
    Inference,
    tokens,
)
from conversionflow_dagster.core.ingest.tables import CURRENCY_SIGNS

WIDTH = 100
COMMENT_COLUMN = 32  # where a comment after a key starts, as in the shipped configs
PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")  # text YAML reads back unchanged, unquoted
ROUTES = {"panel": "a weekly panel", "events": "an event log with a spend feed"}


@dataclass(frozen=True)
class Unset:
    """A key written commented out, with an example value: its default applies until set."""

    example: object


def project_key(name: str) -> str:
    """The key a project name gives (its asset and report folder, its config file name)."""
    return ProjectSection.model_construct(name=name).key


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if PLAIN.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _flow(value: object) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def _with_comment(line: str, comment: str | None, pad: str) -> list[str]:
    if comment is None:
        return [line]
    beside = f"{line:<{COMMENT_COLUMN - 2}}  # {comment}"
    if len(beside) <= WIDTH:
        return [beside]
    above = textwrap.wrap(comment, WIDTH - len(pad) - 2)
    return [f"{pad}# {part}" for part in above] + [line]


def render_yaml(
    document: Mapping, comments: Mapping[str, str], prefix: str = "", depth: int = 0
) -> list[str]:
    """Block YAML for ``document`` with ``comments`` (dotted key -> text) beside or above keys.

    A mapping whose keys carry no comments of their own is written inline, as the shipped
    configs write channels; :class:`Unset` values are written commented out.
    """
    pad = "  " * depth
    lines = []
    for key, value in document.items():
        path = f"{prefix}{key}"
        comment = comments.get(path)
        if isinstance(value, Unset):
            lines += _with_comment(f"{pad}# {_scalar(key)}: {_flow(value.example)}", comment, pad)
        elif isinstance(value, Mapping) and value and _nested(value, comments, path):
            empty = all(isinstance(v, Unset) for v in value.values())  # still a mapping
            lines += _with_comment(f"{pad}{_scalar(key)}:{' {}' if empty else ''}", comment, pad)
            lines += render_yaml(value, comments, f"{path}.", depth + 1)
        else:
            lines += _with_comment(f"{pad}{_scalar(key)}: {_flow(value)}", comment, pad)
    return lines


def _nested(value: Mapping, comments: Mapping[str, str], path: str) -> bool:
    children = any(key.startswith(f"{path}.") for key in comments)
    return children or any(isinstance(v, Mapping | Unset) for v in value.values())


def _relative(path: Path, root: Path) -> tuple[str, bool]:
    """The path as the config writes it, and whether it lies outside the project root."""
    absolute = path if path.is_absolute() else Path.cwd() / path
    absolute = absolute.resolve()
    if absolute.is_relative_to(root.resolve()):
        return absolute.relative_to(root.resolve()).as_posix(), False
    return absolute.as_posix(), True


def _money(x: float) -> str:
    return f"{x:,.0f}"


# Currency words in column names -> the symbol the report shows before money amounts.
CURRENCIES = {"eur": "€", "euro": "€", "euros": "€", "usd": "$", "dollar": "$", "dollars": "$",
              "gbp": "£", "pound": "£", "pounds": "£", "jpy": "¥", "yen": "¥", "inr": "₹",
              "chf": "CHF ", "aud": "A$", "cad": "C$", "nzd": "NZ$", "sek": "SEK ",
              "nok": "NOK ", "dkk": "DKK ", "pln": "PLN ", "brl": "R$"}  # fmt: skip


def _currency(inference: Inference, comments: dict[str, str]) -> object:
    """``report.currency`` from the money columns (spend, and revenue) when their names or
    values name one currency (``search_eur``, ``TV Spend USD``, ``Sales (€)``, values written
    ``$1,234.56``), else left unset with a comment saying how to set it."""
    key = "report.currency"
    columns = [c.spend_column for c in inference.channels if c.spend_column]
    columns = list(filter(None, [*columns, inference.columns.get("panel", {}).get("revenue")]))
    named = {
        f"{column!r}": symbol
        for column in columns
        for symbol in [CURRENCIES.get(word) for word in tokens(column)]
        + [sign for sign in CURRENCY_SIGNS if sign in column]
        if symbol
    }
    for column, sign in inference.currency_signs.items():  # an events route's spend file's too
        if column in columns or inference.route == "events":
            named.setdefault(f"the values of {column!r}", sign)
    if len(set(named.values())) == 1:
        columns = ", ".join(list(named)[:3]) + (", ..." if len(named) > 3 else "")
        comments[key] = f"shown before money amounts; the money columns say so ({columns})"
        return next(iter(named.values()))
    comments[key] = (
        "unset = no symbol before money amounts; "
        + ("the money columns name several currencies: " if named else "")
        + "set it, e.g. '€' or '$'"
    )
    return Unset("€")


def config_document(
    inference: Inference, name: str, root: Path, attributable_share: float | None = None
) -> tuple[dict, dict[str, str]]:
    """The proposed config as a document (with :class:`Unset` keys) and its comments."""
    comments = {
        **inference.evidence(),
        "project.partitions.start_month": "first month with data",
        "project.partitions.end_month": "last month with data (inclusive)",
        "sources.route": f"{ROUTES[inference.route]} was recognised",
        "model": "stage 1 (every other key: its default, see README)",
        "optimisation": "stage 2 (allocation)",
        "optimisation.horizon_weeks": "the planning period the budget covers",
    }
    paths, outside = {}, False
    for role, path in inference.paths.items():
        paths[role], away = _relative(path, root)
        outside |= away
    project: dict = {
        "name": name,
        "week_start": inference.week_start,
        "partitions": {"start_month": inference.months[0], "end_month": inference.months[1]},
    }
    if inference.markets:
        project["markets"] = list(inference.markets)
        comments["project.markets"] = (
            "every value of the market column, fitted together in one hierarchical model per "
            "month (model.markets: independent fits each alone)"
        )
    if outside:
        project["allow_paths_outside_root"] = True
        comments["project.allow_paths_outside_root"] = (
            "the data lie outside the project root; copy them under data/ to drop this"
        )
    sources: dict = {"route": inference.route}
    for role in ("panel", "events", "spend"):
        if role in paths:
            source = sources[role] = {"path": paths[role]}
            if role == "spend":
                source["layout"] = inference.spend_layout
            source["columns"] = dict(inference.columns[role])
            if role == "events" and inference.conversion_types:
                source["conversion_types"] = list(inference.conversion_types)
            if role in inference.periods:
                source["period"] = inference.periods[role]
            if role in inference.date_formats:
                source["date_format"] = inference.date_formats[role]
            if role in inference.spend_units:
                source["spend_unit"] = inference.spend_units[role]
            _blank_as_zero(inference, f"sources.{role}", source, comments)
    channels = {}
    for channel in inference.channels:
        entry: dict = {}
        if inference.route == "events":
            entry["touchpoints"] = list(channel.touchpoints)
        if channel.spend_column:
            entry["spend_column"] = channel.spend_column
        if channel.touches_column:
            entry["touches_column"] = channel.touches_column
        channels[channel.name] = entry
    controls: dict = {}
    if "controls" in paths:
        controls = {"path": paths["controls"], **inference.columns["controls"]}
    series = {}
    for control in inference.controls:
        entry = {"column": control.column}
        if control.categorical:
            entry |= {"categorical": True, "baseline": control.baseline}
        series[control.name] = entry
    if series:
        controls["series"] = series
        _blank_as_zero(inference, "controls", controls, comments)
    budget = round(inference.recent_spend or 0)
    document = {
        "project": project,
        "sources": sources,
        "channels": channels,
        "controls": controls,
        "model": {"target": inference.target, "likelihood": inference.likelihood},
        "optimisation": {
            "horizon_weeks": HORIZON_WEEKS,
            "budget": Unset(budget),
            "scenarios": Unset([round(budget * f) for f in DEFAULT_SCENARIO_FACTORS]),
        },
        "report": {
            "attributable_share": _share(inference, attributable_share, comments),
            "currency": _currency(inference, comments),
            "output_dir": "storage/reports",
        },
    }
    if not controls:
        del document["controls"]
    comments["optimisation.budget"] = _budget_comment(inference)
    factors = ", ".join(f"{f:.0%}" for f in DEFAULT_SCENARIO_FACTORS)
    comments["optimisation.scenarios"] = f"unset = {factors} of the budget"
    comments["report.output_dir"] = "reports go to <output_dir>/<project key>/<month>/"
    return document, comments


def _blank_as_zero(inference: Inference, section: str, node: dict, comments: dict) -> None:
    """Propose the section's blank_as_zero commented out, with why: the user decides."""
    if section in inference.blank_as_zero:
        node["blank_as_zero"] = Unset(True)
        comments[f"{section}.blank_as_zero"] = inference.blank_as_zero[section]


def _budget_comment(inference: Inference) -> str:
    text = "unset = the current spend over horizon_weeks"
    if inference.recent_spend is None:
        return text
    text += f": {_money(inference.recent_spend)} in the last {HORIZON_WEEKS} weeks of data"
    if inference.markets:
        each = inference.recent_spend / len(inference.markets)
        text += f" (all markets; the budget is per market: about {_money(each)})"
    return text


def _share(inference: Inference, share: float | None, comments: dict[str, str]) -> object:
    key = "report.attributable_share"
    if share is not None:
        comments[key] = "the share of total sales these data see (--attributable-share)"
        return share
    if inference.route == "panel":
        comments[key] = "unset = 1.0: the panel holds total sales; set it if it holds a part"
        return Unset(1.0)
    comments[key] = (
        "REQUIRED, set it and remove the '#': the share of total sales the journey log can "
        "see (e.g. 0.05 when it sees 5%); money claims in the report are scaled to it"
    )
    return Unset(0.05)


def render_config(
    inference: Inference,
    name: str,
    root: Path,
    config_path: str,
    attributable_share: float | None = None,
) -> str:
    """The commented YAML text of the proposal; ``config_path`` is where it will be written."""
    document, comments = config_document(inference, name, root, attributable_share)
    files = ", ".join(_relative(p, root)[0] for p in inference.paths.values())
    header = [
        *textwrap.wrap(
            f"conversionflow configuration proposed by `conversionflow init` from {files}.",
            WIDTH - 2,
            initial_indent="# ",
            subsequent_indent="# ",
        ),
        "# Each guess says where it came from: check them, edit what is wrong, then run",
        f"# `conversionflow validate --config {config_path}`. Every key is in README.md.",
    ]
    if inference.notes:
        header.append("# Left for you to decide:")
        for note in inference.notes:
            header += textwrap.wrap(
                note, WIDTH, initial_indent="#   - ", subsequent_indent="#     "
            )
    body = []
    for section, value in document.items():
        body += ["", *render_yaml({section: value}, comments)]
    return "\n".join(header + body) + "\n"


def summary_lines(inference: Inference, attributable_share: float | None = None) -> list[str]:
    """What init prints: every guess with its evidence, one line each, then the notes."""
    files = ", ".join(str(p) for p in inference.paths.values())
    lines = [f"route: {ROUTES[inference.route]} ({files})"]
    width = max((len(g.key) for g in inference.guesses), default=0)
    lines += [f"  {g.key:<{width}}  {g.value}  ({g.evidence})" for g in inference.guesses]
    first, last = inference.months
    lines.append(f"  months: {first}..{last} (first and last month with data)")
    if inference.recent_spend is not None:
        spent = _money(inference.recent_spend)
        lines.append(
            f"  current spend over the last {HORIZON_WEEKS} weeks: {spent} "
            "(optimisation.budget is left unset: the allocation defaults to it)"
        )
    if inference.route == "events" and attributable_share is None:
        lines.append(
            "  report.attributable_share: not set; the events route requires it: pass "
            "--attributable-share or set it in the config"
        )
    if inference.notes:
        lines.append("could not decide, or check:")
        lines += [f"  - {note}" for note in inference.notes]
    return lines


def default_name(files: list[str]) -> str:
    """The project name a data file suggests: its name, or its folder's for per-month files."""
    first = Path(files[0])
    return first.parent.name if MONTH_STEM.match(first.stem) else first.stem
