"""Harmonise raw survey values: codes and labels to the dictionary's categories, divisions to codes.

Every mapping works on the distinct values of a column (a survey has few),
so a million rows cost little. A non-empty value that cannot be read stops
the run with an IngestError naming the first row that carries it; an empty
value becomes missing and is dealt with by the cleaning rules.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .config import Plan
from .dictionary import AGE_GROUPS, ITEM_RE
from .errors import safe_value
from .ingest import IngestError, Source
from .pseudonymise import personal_kind

log = logging.getLogger(__name__)

_BAD = object()
MISSING_TOKENS = {"", "na", "n/a", "nan", "null", "none", "-", "--", "—", "/", "缺失", "未答", "拒答", "不详", "空"}


def norm_text(value: Any) -> str | None:
    """Text form of a cell: NFKC (full-width digits/letters/spaces to ASCII), trimmed, single spaces."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if np.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()[:10]
    s = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", str(value))).strip()
    return None if s.lower() in MISSING_TOKENS else s


def value_key(value: Any) -> str | None:
    """Matching key of a value: normalised text, lower case, no spaces or punctuation."""
    s = norm_text(value)
    return None if s is None else re.sub(r"[\W_]+", "", s.lower())


def _keys(*groups: tuple[str, list[str]]) -> dict[str, str]:
    return {value_key(alias): label for label, aliases in groups for alias in [label, *aliases]}


SEX = _keys(("男", ["男性", "m", "male", "man", "1", "先生"]),
            ("女", ["女性", "f", "female", "woman", "2", "女士"]))
URBAN_RURAL = _keys(("城镇", ["城市", "城", "城区", "市区", "urban", "u", "1"]),
                    ("乡村", ["农村", "乡", "rural", "r", "2"]))
EDUCATION = _keys(
    ("小学及以下", ["小学", "小学以下", "未上学", "未上过学", "没上过学", "文盲", "不识字", "不识字或识字很少",
                "primary", "primary or below", "1"]),
    ("初中", ["初级中学", "junior high", "junior secondary", "middle school", "2"]),
    ("高中", ["高中/中专", "高中（中专）", "高中/中专/技校", "中专", "职高", "技校", "中职", "普通高中",
            "senior high", "high school", "senior secondary", "3"]),
    ("大专", ["大学专科", "专科", "高职", "高职高专", "college", "junior college", "associate", "4"]),
    ("本科及以上", ["本科", "大学本科", "大学本科及以上", "研究生", "研究生及以上", "硕士", "博士",
              "bachelor", "bachelor or above", "university", "master", "phd", "5"]),
)
OCCUPATION = _keys(
    ("农民", ["务农", "农林牧渔", "农林牧渔水利业生产人员", "农业生产人员", "渔民", "farmer", "1"]),
    ("产业工人", ["工人", "生产工人", "生产运输设备操作人员", "生产制造及有关人员", "worker",
              "industrial worker", "2"]),
    ("领导干部和公务员", ["领导干部", "公务员", "机关干部", "党政干部", "国家机关、党群组织、企事业单位负责人",
                  "civil servant", "official", "3"]),
    ("专业技术人员", ["技术人员", "教师", "医生", "工程师", "科研人员", "professional", "4"]),
    ("商业服务业人员", ["商业服务人员", "服务业人员", "商业人员", "社会生产服务和生活服务人员", "个体户",
                 "个体工商户", "sales and services", "service worker", "5"]),
    ("学生", ["在校学生", "大学生", "student", "6"]),
    ("离退休人员", ["离退休", "退休", "退休人员", "离休", "retired", "7"]),
    ("无业或失业", ["无业", "失业", "待业", "无业/失业", "失业/待业", "家务", "家庭主妇", "unemployed", "8"]),
    ("其他", ["其它", "其他从业人员", "办事人员", "办事人员和有关人员", "军人", "other", "9"]),
)
ITEM = _keys(("A", ["1"]), ("B", ["2"]), ("C", ["3"]), ("D", ["4"]))
ITEM_OPTIONS = pa.array(["A", "B", "C", "D"])
CATEGORIES = {"sex": SEX, "urban_rural": URBAN_RURAL, "education": EDUCATION, "occupation": OCCUPATION}


def _fail(source: Source | None, df: pd.DataFrame, pos: int, column: str, value: Any,
          expected: str) -> IngestError:
    problem = "value cannot be read"
    value = safe_value(value)  # never echo a free-text value: it may be personal data
    if source is None:
        return IngestError("<frame>", problem, row=f"data row {int(df['row'].iloc[pos])}",
                           column=column, value=value, expected=expected)
    return source.error(problem, data_row=int(df["row"].iloc[pos]), column=column, value=value,
                        expected=expected)


def map_values(df: pd.DataFrame, column: str, func: Callable[[Any], Any], expected: str,
               source: Source | None = None, dtype: str = "str") -> pd.Series:
    """Apply func to each distinct value; func returns _BAD for a value it cannot read."""
    codes, uniques = pd.factorize(df[column], use_na_sentinel=True)
    mapped = [func(u) for u in uniques]
    for i, m in enumerate(mapped):
        if m is _BAD:
            pos = int(np.flatnonzero(codes == i)[0])
            raise _fail(source, df, pos, column, uniques[i], expected)
    if dtype == "str":  # build through Arrow: no Python object per row
        idx = np.where(codes < 0, len(mapped), codes)
        values = pc.take(pa.array([*mapped, None], type=pa.large_string()), pa.array(idx))
        return pd.Series(pd.array(values, dtype="str"), index=df.index, name=column)
    table = np.array([*mapped, None], dtype=object)
    return pd.Series(table[codes], index=df.index, dtype=dtype, name=column)


def arrow_of(s: pd.Series) -> pa.Array | pa.ChunkedArray | None:
    """The Arrow array behind a pandas string column (None for object/numpy columns)."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        return pa.array(s.array)
    return None


def clean_items(s: pd.Series) -> bool:
    """True when every non-missing value is already exactly A, B, C or D (nothing to map)."""
    arr = arrow_of(s)
    if arr is None:
        return False
    idx = pc.index_in(arr, value_set=ITEM_OPTIONS)
    return idx.null_count == arr.null_count


def _category(lookup: dict[str, str]) -> Callable[[Any], Any]:
    def f(v: Any) -> Any:
        k = value_key(v)
        if k is None:
            return None
        return lookup.get(k, _BAD)
    return f


_NUM_RE = re.compile(r"^([-+]?\d+(?:\.\d+)?)\s*(?:岁|周岁|分钟|分|min|mins|minutes|m)?$", re.I)


def _number(v: Any) -> Any:
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return None if pd.isna(v) else float(v)
    s = norm_text(v)
    if s is None:
        return None
    m = _NUM_RE.match(s)
    return float(m.group(1)) if m else _BAD


MAX_NUMBER = 1e9  # no age, weight or duration is this large; phone and ID-card numbers are


def to_number(df: pd.DataFrame, column: str, expected: str, source: Source | None = None,
              integer: bool = False) -> pd.Series:
    s = df[column]
    out = pd.to_numeric(s, errors="coerce").astype("float64")
    todo = out.isna() & s.notna()
    if todo.any():
        sub = df.loc[todo, ["row", column]]
        fixed = map_values(sub, column, _number, expected, source, dtype="float64")
        out.loc[todo] = fixed.to_numpy()
    huge = (out.abs() >= MAX_NUMBER).to_numpy()
    if huge.any():  # a phone or ID-card number typed into a number column
        pos = int(np.flatnonzero(huge)[0])
        raise _fail(source, df, pos, column, s.iloc[pos], f"{expected}, below {MAX_NUMBER:.0e}")
    if integer:
        frac = out.notna() & (out != np.round(out))
        if frac.any():
            pos = int(np.flatnonzero(frac.to_numpy())[0])
            raise _fail(source, df, pos, column, s.iloc[pos], expected)
        return out.astype("Int64")
    return out


_DATE_RE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")


def _date(v: Any) -> Any:
    if isinstance(v, (datetime, date, pd.Timestamp)):
        return pd.Timestamp(v).normalize()
    s = norm_text(v)
    if s is None:
        return None
    m = _DATE_RE.match(s)
    if not m:
        return _BAD
    try:
        return pd.Timestamp(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return _BAD


def to_date(df: pd.DataFrame, column: str, source: Source | None = None) -> pd.Series:
    return map_values(df, column, _date, "a date such as 2025-05-31", source, dtype="datetime64[us]")


# --- design identifiers ------------------------------------------------------------------

DESIGN_CODE = re.compile(r"[0-9A-Za-z\u3400-\u9fff][0-9A-Za-z\u3400-\u9fff_.\-/]{0,39}")
DESIGN_CODE_EXPECTED = ("a design code of letters, Chinese characters, digits and - _ . / (at most 40 characters, "
                        "e.g. 440802-U or 赤坎区-01 as in docs/contracts.md), not free text or personal data")


def design_code(v: Any, places: frozenset[str] = frozenset()) -> Any:
    """A stratum or PSU code as text, or _BAD for free text or something shaped like personal data
    (pseudonymise.personal_kind; `places`: the plan's division and zone names, value_key form).

    These columns are kept in the clean table, so only code-like values may pass.
    """
    s = norm_text(v)
    if s is None:
        return None
    if not DESIGN_CODE.fullmatch(s) or personal_kind(s, places):
        return _BAD
    return s


# --- divisions ---------------------------------------------------------------------------

SUFFIXES = ("区", "县", "市", "district", "county", "city")


def division_lookup(plan: Plan) -> dict[str, str]:
    """Value key -> division code, from codes, names, aliases and management zones in the plan."""
    lookup: dict[str, str] = {}
    for d in plan.divisions:
        code = str(d["code"])
        names = [code, d["name_zh"], d.get("name_en"), *d.get("aliases", []), *map(str, d.get("old_codes", []))]
        for n in filter(None, names):
            lookup[value_key(n)] = code
        for n in (d["name_zh"], d.get("name_en")):
            if n:
                lookup.setdefault(_strip_suffix(value_key(n)), code)
    for z in plan.settings.management_zones:
        for n in [z["name_zh"], *z.get("aliases", [])]:
            lookup[value_key(n)] = str(z["host_code"])
    return lookup


def _strip_suffix(key: str) -> str:
    for suf in SUFFIXES:
        if key.endswith(suf) and len(key) > len(suf) + 1:
            return key[: -len(suf)]
    return key


def division_resolver(plan: Plan) -> Callable[[Any], str | None]:
    """A function from a recorded division (name, short/old name, code, zone) to its code or None."""
    lookup = division_lookup(plan)
    codes = set(plan.division_names)
    prefixes = [value_key(p) for p in (
        f"{plan.settings.city.province_zh}{plan.name_zh}", plan.settings.city.province_zh,
        plan.name_zh, plan.name_zh.rstrip("市"), plan.settings.city.name_en,
    ) if p]

    def resolve(v: Any) -> str | None:
        s = norm_text(v)
        if s is not None and re.fullmatch(r"\d+\.0+", s):  # a code exported as a float
            s = s.split(".")[0]
        k = value_key(s)
        if not k:
            return None
        tries = [k]
        for p in prefixes:
            if k.startswith(p) and len(k) > len(p):
                tries.append(k[len(p):])
        for t in tries:
            if t in lookup:
                return lookup[t]
            if t.isdigit() and len(t) in (9, 12) and t[:6] in codes:  # township/village codes
                return t[:6]
            if _strip_suffix(t) in lookup:
                return lookup[_strip_suffix(t)]
        return None

    return resolve


# --- whole frame -------------------------------------------------------------------------

def age_group(age: pd.Series) -> pd.Series:
    """18-29 … 60-69 (missing outside 18–69)."""
    a = age.astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        g = np.where(a < 30, 0, np.floor(a / 10) - 2)
        valid = (a >= 18) & (a <= 69)
    labels = np.array([*AGE_GROUPS, None], dtype=object)
    g = np.where(valid, g, len(AGE_GROUPS)).astype("int64")
    return pd.Series(labels[g], index=age.index, dtype="str", name="age_group")


def harmonise(df: pd.DataFrame, plan: Plan, source: Source | None = None) -> pd.DataFrame:
    """Canonical types and categories; adds division_code and age_group. Input is not changed."""
    out = pd.DataFrame({"row": df["row"].astype("int64")}, index=df.index)
    ids = df["resp_id"]
    if arrow_of(ids) is not None:  # text already: vectorised NFKC and trim
        ids = ids.str.normalize("NFKC").str.strip().replace("", None)
    else:  # object or numeric (SPSS/Excel ids like 1001.0 become "1001")
        ids = map_values(df, "resp_id", norm_text, "a respondent id", source)
    out["resp_id"] = ids
    for col in ("name", "phone", "id_card", "address"):
        if col in df:
            out[col] = df[col]
    out["county"] = map_values(df, "county", norm_text, "text", source)
    places = frozenset(division_lookup(plan))
    for col in ("stratum", "psu"):
        out[col] = map_values(df, col, partial(design_code, places=places), DESIGN_CODE_EXPECTED, source)
    resolve = division_resolver(plan)
    out["division_code"] = map_values(out.assign(row=df["row"]), "county", resolve, "", source)
    out["design_weight"] = to_number(df, "design_weight", "a positive number", source)
    for col, lookup in CATEGORIES.items():
        allowed = " / ".join(dict.fromkeys(lookup.values()))
        out[col] = map_values(df, col, _category(lookup), f"one of {allowed} (or their codes)", source)
    out["age"] = to_number(df, "age", "an age in completed years (integer)", source, integer=True)
    out["age_group"] = age_group(out["age"])
    if "duration_min" in df:
        out["duration_min"] = to_number(df, "duration_min", "minutes (a number)", source)
    else:
        log.warning("no interview duration column: the speeder rule cannot be applied")
        out["duration_min"] = np.nan
    if "interview_date" in df:
        out["interview_date"] = to_date(df, "interview_date", source)
    else:
        out["interview_date"] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[us]")
    item_f = _category(ITEM)
    for col in sorted(c for c in df.columns if ITEM_RE.match(c)):
        if clean_items(df[col]):
            out[col] = df[col]
        else:
            out[col] = map_values(df, col, item_f, "an answer A, B, C or D (or empty)", source)
    n_unknown = int(out["division_code"].isna().sum() - out["county"].isna().sum())
    if n_unknown:
        log.warning("%d row(s) with a division the plan does not know", n_unknown)
    return out
