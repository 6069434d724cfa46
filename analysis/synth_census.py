"""Population model behind the synthetic demo: strata, demographic mix and census margins.

Published inputs (``census/<city>-population-published.csv``, one row per
published figure with its source): residents at year end and urban share by
division, and the census male share. A management zone tabulated on its own
(e.g. a development zone) is added to its host division as the plan's
``management_zones[].host_code`` says.

Synthetic assumptions (not published, documented here and flagged
``source = synthetic`` in the margins file):

- ``ADULT_SHARE``: share of residents aged 18-69, the same in every division
  (so division sizes and urban shares keep their published proportions);
- ``AGE_DIST``: age-group mix by urban/rural;
- ``EDU_*``: an ordered-probit education model by urban/rural, age group, sex
  and the division's urbanisation.

Because every number in the margins rests on at least one synthetic
assumption, every margins row says ``synthetic``; the published figures they
were built from are checked against the published file in tests.
"""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from .errors import UserError, safe_value

ADULT_SHARE = 0.62  # share aged 18-69 of all residents (synthetic; a young, high-fertility prefecture)
URBAN, RURAL = "城镇", "乡村"
UR_CODE = {URBAN: "U", RURAL: "R"}
SEXES = ("男", "女")
AGE_GROUPS = ("18-29", "30-39", "40-49", "50-59", "60-69")
AGE_BOUNDS = ((18, 29), (30, 39), (40, 49), (50, 59), (60, 69))
AGE_DIST = {  # share of the 18-69 population by age group (synthetic: rural areas older)
    URBAN: np.array([0.25, 0.23, 0.21, 0.18, 0.13]),
    RURAL: np.array([0.19, 0.18, 0.21, 0.22, 0.20]),
}
EDUCATION = ("小学及以下", "初中", "高中", "大专", "本科及以上")
# Ordered probit: latent = base[ur] + age[g] + male*sex + div*z(urban share) + N(0,1), cut at EDU_CUTS.
EDU_BASE = {URBAN: 0.50, RURAL: -0.05}
EDU_AGE = np.array([0.75, 0.45, 0.05, -0.35, -0.75])
EDU_MALE = 0.12
EDU_DIV = 0.10
EDU_CUTS = np.array([-0.55, 0.75, 1.45, 1.95])

MARGIN_COLUMNS = ("margin", "division_code", "urban_rural", "sex", "age_group", "education",
                  "population", "source")


class CensusInputError(UserError, ValueError):
    """Published population figures are missing or do not fit the plan."""


def published_path(plan: Any, raw_dir: Path | None = None) -> Path:
    """Where the published population figures live (raw_dir first, then the plan's raw dir)."""
    rel = plan.settings.survey.census_published.format(city=plan.city)
    for base in (raw_dir, plan.raw_dir):
        if base is not None and (Path(base) / rel).exists():
            return Path(base) / rel
    return Path(plan.raw_dir) / rel


def _published_text(path: Path) -> str:
    from .ingest import IngestError, decode_text

    try:
        return decode_text(path)
    except IngestError as err:
        raise CensusInputError(f"published population figures {path}, line {str(err.row).split()[0]}: "
                               f"text encoding not recognised ({err.value}); expected {err.expected}") from None


def _number(text: str, path: Path, line: int) -> float:
    """A published figure: full-width digits and thousands separators are read, anything else refused."""
    plain = unicodedata.normalize("NFKC", text).strip().replace(",", "")
    try:
        return float(plain)
    except ValueError:
        pass
    where = f"published population figures {path}, line {line}, column 'value'"
    if plain.endswith("%"):
        raise CensusInputError(f"{where}: a number with a percent sign; expected the number alone "
                               "(e.g. 52.3) with its unit in column 'unit' (percent)")
    raise CensusInputError(f"{where}: value {safe_value(text)} is not a number; expected a plain number "
                           "with its unit in column 'unit'")


def read_published(plan: Any, raw_dir: Path | None = None) -> pd.DataFrame:
    """The published figures, in any encoding ingest detects; errors name the file, line and column."""
    from .ingest import csv_record_lines

    path = published_path(plan, raw_dir)
    if not path.exists():
        raise CensusInputError(f"published population figures {path} not found; the synthetic census "
                               "margins are built on them")
    text = _published_text(path)
    df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    df.columns = [str(c).strip() for c in df.columns]
    need = {"scope_code", "scope_name_zh", "measure", "year", "value", "unit", "source"}
    if need - set(df.columns):
        raise CensusInputError(f"published population figures {path}: missing columns "
                               f"{sorted(need - set(df.columns))}; the header is line 1")
    lines = csv_record_lines(text, skip_blank=True)[1:]
    df["line"] = lines[: len(df)]
    df = df[(df[sorted(need)] != "").any(axis=1)].reset_index(drop=True)  # Excel's ',,,,,,' rows
    df["value"] = [_number(v, path, n) for v, n in zip(df["value"], df["line"], strict=True)]
    year = pd.to_numeric(df["year"].map(lambda v: unicodedata.normalize("NFKC", v)), errors="coerce")
    if year.isna().any():
        i = int(year.isna().to_numpy().argmax())
        raise CensusInputError(f"published population figures {path}, line {df['line'][i]}, column 'year': "
                               f"value {safe_value(df['year'][i])} is not a year; expected e.g. 2020")
    df["year"] = year.astype(int)
    df.attrs["path"] = str(path)
    return df


def _zone_host(plan: Any, name: str) -> str | None:
    for z in plan.settings.management_zones:
        if name == z["name_zh"] or name in z.get("aliases", []):
            return str(z["host_code"])
    return None


def division_population(plan: Any, raw_dir: Path | None = None) -> pd.DataFrame:
    """Residents (persons) and urban share per plan division, zones folded into their hosts.

    Uses the latest year that has ``residents_year_end`` for every division.
    """
    pub = read_published(plan, raw_dir)
    src = pub.attrs["path"]
    res = pub[pub["measure"] == "residents_year_end"]
    if res.empty:
        raise CensusInputError(f"{src}: no residents_year_end rows")
    year = int(res["year"].max())
    res = res[res["year"] == year]
    urb = pub[(pub["measure"] == "urban_share") & (pub["year"] == year)]
    codes = list(plan.division_names)
    residents = dict.fromkeys(codes, 0.0)
    urban = dict.fromkeys(codes, 0.0)
    for r in res.itertuples(index=False):
        code = r.scope_code or _zone_host(plan, r.scope_name_zh)
        if code not in residents:
            raise CensusInputError(f"{src}, line {r.line}, column 'scope_code': {r.scope_name_zh!r} "
                                   f"({r.scope_code!r}) is neither a plan division nor a management zone "
                                   "with a host; expected a division code of the plan file")
        share = urb[(urb["scope_code"] == r.scope_code) & (urb["scope_name_zh"] == r.scope_name_zh)]
        if len(share) != 1:
            raise CensusInputError(f"{src}, line {r.line}: {len(share)} rows of {year} urban_share for "
                                   f"{r.scope_name_zh}; expected exactly one")
        persons = float(r.value) * (1e4 if r.unit == "万人" else 1.0)
        residents[code] += persons
        urban[code] += persons * float(share["value"].iloc[0]) / 100.0
    missing = [c for c in codes if residents[c] == 0]
    if missing:
        raise CensusInputError(f"{src}: no {year} residents for divisions {missing}")
    out = pd.DataFrame({"division_code": codes,
                        "residents": [residents[c] for c in codes],
                        "urban_residents": [urban[c] for c in codes]})
    out["urban_share"] = out["urban_residents"] / out["residents"]
    out.attrs["year"] = year
    return out


def male_share(plan: Any, raw_dir: Path | None = None) -> float:
    pub = read_published(plan, raw_dir)
    row = pub[(pub["measure"] == "census_male_share") & (pub["scope_code"] == plan.code)]
    return float(row["value"].iloc[-1]) / 100.0 if len(row) else 0.5


def strata(plan: Any, raw_dir: Path | None = None) -> pd.DataFrame:
    """One row per division x urban/rural: stratum id, population aged 18-69, division urbanisation z."""
    div = division_population(plan, raw_dir)
    rows = []
    for d in div.itertuples(index=False):
        for ur in (URBAN, RURAL):
            pop = d.urban_residents if ur == URBAN else d.residents - d.urban_residents
            rows.append({"stratum": f"{d.division_code}-{UR_CODE[ur]}", "division_code": d.division_code,
                         "urban_rural": ur, "population": int(round(pop * ADULT_SHARE)),
                         "div_urban_share": d.urban_share})
    st = pd.DataFrame(rows)
    st = st[st["population"] > 0].reset_index(drop=True)
    return _add_div_z(st)


def _add_div_z(st: pd.DataFrame) -> pd.DataFrame:
    share = st.groupby("division_code", sort=False)["div_urban_share"].first()
    z = (share - share.mean()) / (share.std(ddof=0) or 1.0)
    st["div_z"] = st["division_code"].map(z).astype(float)
    return st


def strata_from_margins(margins: pd.DataFrame) -> pd.DataFrame:
    """Strata table rebuilt from a margins file's division_urban rows."""
    du = margins[margins["margin"] == "division_urban"]
    st = pd.DataFrame({"division_code": du["division_code"].astype(str).to_numpy(),
                       "urban_rural": du["urban_rural"].astype(str).to_numpy(),
                       "population": du["population"].astype(np.int64).to_numpy()})
    st["stratum"] = st["division_code"] + "-" + st["urban_rural"].map(UR_CODE)
    tot = st.groupby("division_code")["population"].transform("sum")
    urb = st["population"].where(st["urban_rural"] == URBAN, 0).groupby(st["division_code"]).transform("sum")
    st["div_urban_share"] = urb / tot
    st = st[st["population"] > 0].reset_index(drop=True)
    return _add_div_z(st[["stratum", "division_code", "urban_rural", "population", "div_urban_share"]])


def edu_latent_mean(urban: np.ndarray, age_group: np.ndarray, male: np.ndarray, div_z: np.ndarray) -> np.ndarray:
    """Mean of the latent education variable (vectorised)."""
    return (np.where(urban, EDU_BASE[URBAN], EDU_BASE[RURAL]) + EDU_AGE[age_group]
            + EDU_MALE * male + EDU_DIV * div_z)


def edu_probs(mu: np.ndarray) -> np.ndarray:
    """P(education category) for latent means mu: shape (len(mu), 5)."""
    cdf = norm.cdf(EDU_CUTS[None, :] - np.asarray(mu, float)[:, None])
    cdf = np.hstack([np.zeros((cdf.shape[0], 1)), cdf, np.ones((cdf.shape[0], 1))])
    return np.diff(cdf, axis=1)


def _round_to_total(values: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to values that add up to total (largest remainder)."""
    scaled = values / values.sum() * total
    base = np.floor(scaled).astype(np.int64)
    rest = total - base.sum()
    order = np.argsort(-(scaled - base), kind="stable")
    base[order[:rest]] += 1
    return base


def census_margins(plan: Any, raw_dir: Path | None = None) -> pd.DataFrame:
    """Long margins table of the 18-69 population (docs/contracts.md); every margin adds to the same total."""
    st = strata(plan, raw_dir)
    p_male = male_share(plan, raw_dir)
    total = int(st["population"].sum())
    sex_age = np.zeros((2, len(AGE_GROUPS)))
    edu = np.zeros(len(EDUCATION))
    for s in st.itertuples(index=False):
        p_age = AGE_DIST[s.urban_rural]
        for k, p_sex in enumerate((p_male, 1 - p_male)):
            cells = s.population * p_sex * p_age
            sex_age[k] += cells
            mu = edu_latent_mean(np.full(5, s.urban_rural == URBAN), np.arange(5),
                                 np.full(5, 1 - k), np.full(5, s.div_z))
            edu += (cells[:, None] * edu_probs(mu)).sum(axis=0)
    rows = [{"margin": "division_urban", "division_code": s.division_code, "urban_rural": s.urban_rural,
             "population": int(s.population)} for s in st.itertuples(index=False)]
    sa = _round_to_total(sex_age.ravel(), total).reshape(sex_age.shape)
    rows += [{"margin": "sex_age", "sex": SEXES[k], "age_group": AGE_GROUPS[g], "population": int(sa[k, g])}
             for k in range(2) for g in range(len(AGE_GROUPS))]
    ed = _round_to_total(edu, total)
    rows += [{"margin": "education", "education": EDUCATION[e], "population": int(ed[e])}
             for e in range(len(EDUCATION))]
    out = pd.DataFrame(rows, columns=list(MARGIN_COLUMNS))
    out["source"] = "synthetic"
    for c in ("division_code", "urban_rural", "sex", "age_group", "education"):
        out[c] = out[c].astype("str")
    out["population"] = out["population"].astype(np.int64)
    return out
