"""Synthetic survey microdata: a latent-trait model answered item by item, with injected faults.

Shape (like the national survey): residents aged 18-69; strata are division x
urban/rural (``<code>-U|R``); about 20 respondents per PSU (village or
community); sample allocated in proportion to the square root of the stratum
population, so design weights (stratum population / stratum sample, times a
PSU-level factor) vary between strata and add up to the population.
Respondents are drawn with mild non-response tilts (women, older and slightly
more educated people are over-represented), so raking to the census margins
has work to do.

Answers: person ability = year intercept + education + age + sex + urban +
occupation + division (its urbanisation plus a fixed jitter) + PSU effect +
noise; four dimension traits = ability + dimension offset + unique part;
each item is answered by a 3PL model (discrimination a, difficulty b,
guessing 0.25). Wrong answers are one of the three other options, or left
blank (``SKIP_SHARE`` of wrong answers). Literacy is never drawn directly:
it is what the scoring module makes of the answers.

Truth and sampling: the year intercept is fixed by the population, not by the
sample (``synth_population``): a large self-weighting draw from the same model,
without non-response, sets each year's intercept so that the city's TRUE share
under the year's rule (``plan.scoring_rule``) follows ``DEMO_PATH`` (the plan's
published rates where they exist: 6.93% in 2016, 10.0% in 2020). Each survey
year is then an independent stratified two-stage sample (PSUs of about 20 with a
shared random effect, ``PSU_SD``, so estimates carry design effects above 1), and
its estimates scatter around the truth with their sampling error.
``raw.attrs["calibration"]`` keeps the intercept, the true share and the sample's
raked estimate over the rows a correct cleaning keeps.

Faults (``FAULT_RATES`` are expected shares of the base rows; each year's count
is drawn at random, Binomial, so counts differ between years; a row may carry
several faults, e.g. a speeder who also straightlines, ``SPEEDER_STRAIGHTLINE``;
the faults file has one line per row and fault):

- duplicate: a later copy of a clean row: exact copy (same resp_id),
  re-entered (same resp_id, a few answers, duration and date differ) or the
  same interview under a new resp_id;
- age_out_of_range: age 0, 16, 17, 70-85 or 999 (17 and 70 most often);
- missing_items: 30-100% of the core items blank;
- variant_division: county written as a short/old/English name, code,
  full-width code, stray spaces or a management zone of that division (kept
  by cleaning once harmonised);
- speeder: duration below ``survey.cleaning.min_duration_minutes`` (some just
  0.1 below);
- straightline: the same option on a run longer than
  ``survey.cleaning.max_straightline_run`` items.

Borderline rows (``BORDERLINE_RATES``; kept by a correct cleaning, recorded in
the faults file with a ``borderline_`` fault name so precision is tested):
ages exactly 18 or 69, durations exactly at the speeder threshold, and
near-duplicates (same division and demographics as another row, answers
differing in one or two items).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .scoring import DIMENSIONS, OPTIONS, classify, plan_dimension_points, three_dim_thresholds
from .synth_census import (
    AGE_BOUNDS,
    AGE_DIST,
    AGE_GROUPS,
    EDU_CUTS,
    EDUCATION,
    RURAL,
    URBAN,
    _round_to_total,
    census_margins,
    edu_latent_mean,
    strata_from_margins,
)
from .synth_population import (
    DIV_TREND_SD,
    OCC_TREND,
    POPULATION_N,
    REF_YEAR,
    Population,
    person_thresholds,
    solve_intercept,
    truth_table,
)

FAULT_RATES = {
    "duplicate": 0.015,
    "age_out_of_range": 0.010,
    "missing_items": 0.020,
    "variant_division": 0.050,
    "speeder": 0.015,
    "straightline": 0.005,
}
DROPPING_FAULTS = ("age_out_of_range", "missing_items", "speeder", "straightline")
SPEEDER_STRAIGHTLINE = 0.35   # share of straightliners drawn among the speeders (rows with two faults)
BORDERLINE_RATES = {"borderline_age": 0.006, "borderline_duration": 0.004, "near_duplicate": 0.003}
# True city rates (percent, under each year's rule) for years without a published
# figure; published years take the plan's value. 2021-2025 rise about one point a
# year, unevenly, short of the 2025 target on purpose.
DEMO_PATH = {2016: 6.93, 2018: 8.4, 2020: 10.0, 2021: 10.8, 2022: 11.7, 2023: 12.8, 2024: 13.7,
             2025: 14.8}

ITEMS_PER_DIMENSION = {"knowledge": 20, "method": 10, "spirit": 10, "application": 10}
NON_CORE_EVERY = 5        # every 5th item is not core: 40 of 50 core
GUESS = 0.25
SKIP_SHARE = 0.03         # share of wrong answers left blank ("don't know")
OCCUPATIONS = ("农民", "产业工人", "领导干部和公务员", "专业技术人员", "商业服务业人员", "学生",
               "离退休人员", "无业或失业", "其他")
PSU_SIZE = 20
PSU_WEIGHT_SD = 0.25      # log-sd of the PSU factor in the design weight
RESP_MALE_ODDS = 0.95     # non-response tilts: men and the young answer a little less
RESP_AGE_TILT = np.array([0.95, 0.975, 1.00, 1.025, 1.05])
RESP_EDU_SHIFT = 0.0
# Ability model (latent scale; the year intercept sets the level)
B_EDU = np.array([-0.70, -0.30, 0.10, 0.45, 0.75])
B_AGE_PER_YEAR = -0.011
B_MALE = 0.22
B_URBAN = 0.05
B_OCC = np.array([-0.25, -0.05, 0.35, 0.30, 0.0, 0.25, 0.05, -0.15, 0.0])
B_DIV = 0.12              # per SD of division urbanisation
DIV_JITTER_SD = 0.06
PSU_SD = 0.45           # PSU random effect: intra-class correlation, design effects above 1
NOISE_SD = 0.60
DIM_OFFSET = {"knowledge": 0.0, "method": -0.15, "spirit": 0.35, "application": 0.05}
DIM_SD = 0.30
ITEM_A_RANGE = (0.35, 0.90)   # low discrimination: scores bunch around 50-60 as in the national survey
ITEM_B_MEAN, ITEM_B_SD = 0.0, 0.8


class SynthError(ValueError):
    """The generator was asked for something it cannot make."""


def _rngs(seed: int, year: int, k: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, year]).spawn(k)]


def make_questionnaire(plan: Any, seed: int) -> pd.DataFrame:
    """50 synthetic items (contract columns); keys never repeat more than 3 times in a row."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    points = plan_dimension_points(plan)
    names = {str(d["id"]): d.get("name_zh", d["id"]) for d in plan.settings.scoring.score.dimensions}
    rows = []
    for dim in DIMENSIONS:
        k = ITEMS_PER_DIMENSION[dim]
        for j in range(k):
            rows.append({"dimension": dim, "points": points[dim] / k,
                         "text_zh": f"合成题目：{names.get(dim, dim)} 第{j + 1}题"})
    keys: list[str] = []
    while len(keys) < len(rows):
        opt = OPTIONS[int(rng.integers(0, 4))]
        if len(keys) >= 3 and keys[-1] == keys[-2] == keys[-3] == opt:
            continue
        keys.append(opt)
    q = pd.DataFrame(rows)
    q.insert(0, "item_id", [f"q{i + 1:02d}" for i in range(len(q))])
    q.insert(3, "correct", keys)
    q.insert(4, "core", [(i + 1) % NON_CORE_EVERY != 0 for i in range(len(q))])
    return q


def item_parameters(questionnaire: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(discrimination a, difficulty b) per item, fixed by the seed (the same every year)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    m = len(questionnaire)
    return rng.uniform(*ITEM_A_RANGE, m), rng.normal(ITEM_B_MEAN, ITEM_B_SD, m)


def target_rate(plan: Any, year: int) -> float:
    published = plan.published_rates
    if year in published:
        return published[year]
    path = {int(k): float(v) for k, v in (plan.settings.survey.demo_rates or DEMO_PATH).items()}
    if year not in path:
        raise SynthError(f"no target rate for {year}: not published in the plan and not in the demo path "
                         f"{sorted(path)}")
    return path[year]


def _division_effects(st: pd.DataFrame, seed: int) -> dict[str, float]:
    codes = sorted(st["division_code"].unique())
    jitter = np.random.default_rng(np.random.SeedSequence([seed, 3])).normal(0, DIV_JITTER_SD, len(codes))
    z = st.groupby("division_code")["div_z"].first()
    return {c: B_DIV * float(z[c]) + float(j) for c, j in zip(codes, jitter, strict=True)}


def _sample_design(st: pd.DataFrame, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stratum, PSU and design weight for n respondents."""
    n_h = _round_to_total(np.sqrt(st["population"].to_numpy(float)), n)
    s_idx, psu_num, psu_global, weight = [], [], [], []
    g = 0
    for h, nh in enumerate(n_h):
        if nh == 0:
            continue
        m = min(nh, max(2, int(round(nh / PSU_SIZE))))  # 2+ PSUs: variance estimation needs them
        sizes = 1 + rng.multinomial(nh - m, _normalise(rng.gamma(30.0, size=m)))
        factor = np.exp(rng.normal(0.0, PSU_WEIGHT_SD, len(sizes)))
        f_resp = np.repeat(factor, sizes)
        w = st["population"].iat[h] / nh * f_resp / f_resp.mean()
        s_idx.append(np.full(nh, h))
        psu_num.append(np.repeat(np.arange(1, len(sizes) + 1), sizes))
        psu_global.append(np.repeat(np.arange(g, g + len(sizes)), sizes))
        weight.append(w)
        g += len(sizes)
    return {"stratum_idx": np.concatenate(s_idx), "psu_num": np.concatenate(psu_num),
            "psu_global": np.concatenate(psu_global), "design_weight": np.concatenate(weight),
            "n_psu": np.array(g)}


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / x.sum()


def _demographics(st: pd.DataFrame, s_idx: np.ndarray, p_male: float,
                  rng: np.random.Generator, tilt: bool = True) -> dict[str, np.ndarray]:
    """Sex, age, education and occupation; tilt: the respondents' non-response tilts."""
    n = len(s_idx)
    urban = (st["urban_rural"].to_numpy() == URBAN)[s_idx]
    div_z = st["div_z"].to_numpy(float)[s_idx]
    odds = p_male / (1 - p_male) * (RESP_MALE_ODDS if tilt else 1.0)
    male = rng.random(n) < odds / (1 + odds)
    age_group = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    for ur, mask in ((URBAN, urban), (RURAL, ~urban)):
        p = AGE_DIST[ur] * (RESP_AGE_TILT if tilt else 1.0)
        age_group[mask] = np.searchsorted(np.cumsum(p / p.sum())[:-1], u[mask], side="right")
    lo = np.array([b[0] for b in AGE_BOUNDS])[age_group]
    hi = np.array([b[1] for b in AGE_BOUNDS])[age_group]
    age = lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(np.int64)
    mu = edu_latent_mean(urban, age_group, male, div_z) + (RESP_EDU_SHIFT if tilt else 0.0)
    edu = np.searchsorted(EDU_CUTS, mu + rng.normal(size=n))
    occ = _occupation(urban, age, edu, male, rng)
    return {"urban": urban, "male": male, "age": age, "age_group": age_group, "edu": edu, "occ": occ}


def _occupation(urban, age, edu, male, rng) -> np.ndarray:
    """Occupation by a multinomial logit on urban/rural, age, education and sex (Gumbel-max draw)."""
    n = len(age)
    rural = (~urban).astype(float)
    e = edu.astype(float)
    m = male.astype(float)
    never = -50.0
    util = np.column_stack([
        0.6 + 1.8 * rural - 0.75 * e + 0.02 * (age - 40),                       # 农民
        0.7 + 0.35 * m + 0.3 * ((edu == 1) | (edu == 2)) - 0.05 * np.maximum(age - 50, 0),  # 产业工人
        np.where((age >= 25) & (age <= 60) & (edu >= 2), -4.3 + 0.95 * e + 0.3 * m - 0.4 * rural,
                 never),                                                        # 领导干部和公务员
        -2.6 + 0.85 * e - 0.3 * rural,                                          # 专业技术人员
        0.4 + 0.6 * (1 - rural) + 0.1 * e,                                      # 商业服务业人员
        np.where(age <= 24, 0.2 + 0.7 * e - 0.45 * (age - 18), never),          # 学生
        np.where(age >= 55, -1.5 + 1.6 * (1 - rural) + 0.3 * e + 0.15 * (age - 55), never),  # 离退休人员
        np.full(n, -1.6),                                                       # 无业或失业
        np.full(n, -1.3),                                                       # 其他
    ])
    return np.argmax(util + rng.gumbel(size=util.shape), axis=1)


def _thresholds(eta_dim: np.ndarray, dim_of_item: np.ndarray, a: np.ndarray, b: np.ndarray,
                u: np.ndarray) -> np.ndarray:
    """t[i, j]: item j is answered right iff the year intercept exceeds t[i, j] (3PL inverted)."""
    t = np.empty(u.shape, dtype=np.float32)
    for j in range(u.shape[1]):
        uj = u[:, j].astype(np.float64)
        p = np.clip((uj - GUESS) / (1 - GUESS), 1e-12, 1 - 1e-12)
        tj = b[j] + np.log(p / (1 - p)) / a[j] - eta_dim[:, dim_of_item[j]]
        t[:, j] = np.where(uj <= GUESS, -np.inf, tj)
    return t


def _scores_frame(correct: np.ndarray, pts: np.ndarray) -> pd.DataFrame:
    dim_scores = correct.astype(np.float32) @ pts
    dim_scores = np.round(dim_scores.astype(np.float64), 6)
    out = pd.DataFrame({f"score_{d}": dim_scores[:, k] for k, d in enumerate(DIMENSIONS)})
    out["score_total"] = np.round(dim_scores.sum(axis=1), 6)
    return out


def _weighted_rate(correct, pts, w, plan, year) -> float:
    lit = classify(_scores_frame(correct, pts), plan, year)["literate"].to_numpy()
    return float(100.0 * (w * lit).sum() / w.sum())


def rake_weights(design_weight: np.ndarray, cells: dict[str, np.ndarray], margins: pd.DataFrame,
                 names: list[str], bounds: tuple[float, float] | None = (0.2, 5.0),
                 max_iter: int = 100, tol: float = 1e-8) -> np.ndarray:
    """Raking (iterative proportional fitting) of design weights to census margins.

    cells[name] holds each row's cell key in margin ``name`` (strings like the
    margins table's columns joined by '|'). Weights stay within bounds x design weight.
    """
    w = design_weight.astype(float).copy()
    lo, hi = (design_weight * bounds[0], design_weight * bounds[1]) if bounds else (None, None)
    codes, targets = [], []
    for name in names:
        part = margins[margins["margin"] == name]
        keys = _margin_keys(part, name)
        index = {k: i for i, k in enumerate(keys)}
        c = pd.Series(cells[name]).map(index)
        if c.isna().any():
            raise SynthError(f"margin {name}: sample cell {cells[name][int(np.flatnonzero(c.isna())[0])]!r} "
                             "is not in the census margins")
        codes.append(c.to_numpy(np.int64))
        targets.append(part["population"].to_numpy(float))
    for _ in range(max_iter):
        for c, t in zip(codes, targets, strict=True):
            tot = np.bincount(c, weights=w, minlength=len(t))
            w = w * np.where(tot > 0, t / np.where(tot > 0, tot, 1.0), 1.0)[c]
            if lo is not None:
                w = np.clip(w, lo, hi)
        gap = max(float(np.max(np.abs(np.bincount(c, weights=w, minlength=len(t)) - t) / np.maximum(t, 1.0)))
                  for c, t in zip(codes, targets, strict=True))
        if gap < tol:
            break
    return w


MARGIN_CELLS = {"division_urban": ("division_code", "urban_rural"), "sex_age": ("sex", "age_group"),
                "education": ("education",)}


def _margin_keys(part: pd.DataFrame, name: str) -> list[str]:
    cols = MARGIN_CELLS[name]
    return ["|".join(str(row[c]) for c in cols) for _, row in part.iterrows()]


def _sample_cells(st: pd.DataFrame, s_idx: np.ndarray, demo: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    div = st["division_code"].to_numpy(dtype=object)[s_idx]
    ur = np.where(demo["urban"], URBAN, RURAL).astype(object)
    sex = np.where(demo["male"], "男", "女").astype(object)
    ag = np.array(AGE_GROUPS, dtype=object)[demo["age_group"]]
    edu = np.array(EDUCATION, dtype=object)[demo["edu"]]
    return {"division_urban": div + "|" + ur, "sex_age": sex + "|" + ag, "education": edu}


def _item_matrix(q: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(dimension index per item, points matrix items x dimensions)."""
    dim_index = {d: k for k, d in enumerate(DIMENSIONS)}
    dim_of_item = q["dimension"].map(dim_index).to_numpy()
    pts = np.zeros((len(q), len(DIMENSIONS)), dtype=np.float32)
    pts[np.arange(len(q)), dim_of_item] = q["points"].to_numpy(float)
    return dim_of_item, pts


def _ability(st, s_idx, demo, div_eff, psu_eff, rng) -> np.ndarray:
    """Latent ability without the year intercept (psu_eff: one value per respondent)."""
    div_codes = st["division_code"].to_numpy()[s_idx]
    return (B_EDU[demo["edu"]] + B_AGE_PER_YEAR * (demo["age"] - 18) + B_MALE * demo["male"]
            + B_URBAN * demo["urban"] + B_OCC[demo["occ"]]
            + pd.Series(div_codes).map(div_eff).to_numpy(float) + psu_eff
            + rng.normal(0, NOISE_SD, len(s_idx)))


def _drift_slope(st, s_idx, demo, div_trend: dict[str, float]) -> np.ndarray:
    div_codes = st["division_code"].to_numpy()[s_idx]
    occ = np.array(OCCUPATIONS, dtype=object)[demo["occ"]]
    return (pd.Series(div_codes).map(div_trend).to_numpy(float)
            + pd.Series(occ).map(OCC_TREND).fillna(0.0).to_numpy(float))


def _rule_cuts(plan: Any) -> dict[str, Any]:
    cuts = three_dim_thresholds(plan)
    return {"score": plan.settings.scoring.score.literate_min,
            "three_dimension": {DIMENSIONS.index(d): float(c) for d, c in cuts.items()}}


def _key_group_masks(plan: Any, age: np.ndarray, occ: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for g in plan.settings.literacy.key_groups:
        rule = g.get("rule", {})
        m = np.ones(len(age), bool)
        if "occupation" in rule:
            m &= occ == str(rule["occupation"])
        m &= (age >= float(rule.get("age_min", -np.inf))) & (age <= float(rule.get("age_max", np.inf)))
        out[str(g["id"])] = m
    return out


def target_years(plan: Any) -> list[int]:
    path = {int(k): float(v) for k, v in (plan.settings.survey.demo_rates or DEMO_PATH).items()}
    return sorted(set(path) | set(plan.published_rates))


def build_population(plan: Any, seed: int, questionnaire: pd.DataFrame | None = None,
                     margins: pd.DataFrame | None = None, n_pop: int = POPULATION_N) -> Population:
    """The population draw, its person thresholds and the intercepts of every path year."""
    q = questionnaire if questionnaire is not None else make_questionnaire(plan, seed)
    if margins is None:
        margins = census_margins(plan)
    st = strata_from_margins(margins)
    r_demo, r_ability, r_items, r_trend = _rngs(seed, 0, 4)
    n_h = _round_to_total(st["population"].to_numpy(float), n_pop)
    s_idx = np.repeat(np.arange(len(st)), n_h)
    weight = (st["population"].to_numpy(float) / np.maximum(n_h, 1))[s_idx]
    demo = _demographics(st, s_idx, _margin_male(margins), r_demo, tilt=False)
    div_eff = _division_effects(st, seed)
    eta = _ability(st, s_idx, demo, div_eff, r_ability.normal(0, PSU_SD, len(s_idx)), r_ability)
    eta_dim = np.column_stack([eta + DIM_OFFSET[d] + r_ability.normal(0, DIM_SD, len(s_idx))
                               for d in DIMENSIONS])
    dim_of_item, pts = _item_matrix(q)
    a, b = item_parameters(q, seed)
    u = r_items.random((len(s_idx), len(q)), dtype=np.float32)
    cstar = person_thresholds(_thresholds(eta_dim, dim_of_item, a, b, u), pts, _rule_cuts(plan))
    codes = sorted(st["division_code"].unique())
    div_trend = dict(zip(codes, r_trend.normal(0, DIV_TREND_SD, len(codes)).tolist(), strict=True))
    slope = _drift_slope(st, s_idx, demo, div_trend)
    occ = np.array(OCCUPATIONS, dtype=object)[demo["occ"]]
    labels = pd.DataFrame({
        "division_code": st["division_code"].to_numpy(dtype=object)[s_idx],
        "urban_rural": np.where(demo["urban"], URBAN, RURAL), "sex": np.where(demo["male"], "男", "女"),
        "age_group": np.array(AGE_GROUPS, dtype=object)[demo["age_group"]],
        "education": np.array(EDUCATION, dtype=object)[demo["edu"]], "occupation": occ,
        "age": demo["age"]})
    intercepts, targets = {}, {}
    for year in target_years(plan):
        tgt = target_rate(plan, year)
        rule = plan.scoring_rule(year)
        intercepts[year] = solve_intercept(cstar[rule] - slope * (year - REF_YEAR), weight, tgt)
        targets[year] = tgt
    return Population(cstar=cstar, slope=slope, weight=weight, labels=labels, div_trend=div_trend,
                      intercepts=intercepts, targets=targets, item_a=a, item_b=b, div_eff=div_eff)


def population_truth(plan: Any, pop: Population, years: list[int] | None = None) -> pd.DataFrame:
    """True shares by year and domain (synthetic population), rounded for a stable file."""
    years = sorted(pop.intercepts) if years is None else [int(y) for y in years]
    lab = pop.labels
    masks = _key_group_masks(plan, lab["age"].to_numpy(), lab["occupation"].to_numpy(dtype=object))
    t = truth_table(pop, plan, years, masks)
    t["true_share"] = t["true_share"].round(6)
    t["population"] = t["population"].round(0).astype(np.int64)
    return t


def _fullwidth(s: str) -> str:
    return s.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})


def division_variants(plan: Any, code: str) -> list[str]:
    """Ways a contractor might write a division other than its official name (from the plan)."""
    d = next(x for x in plan.divisions if str(x["code"]) == code)
    name = d["name_zh"]
    out = [*map(str, d.get("aliases", [])), code, _fullwidth(code), str(d.get("name_en", "")),
           f" {name}", f"{name} ", f"{name}\u3000", f" {code} "]
    for z in plan.settings.management_zones:
        if str(z["host_code"]) == code:
            out += [z["name_zh"], *z.get("aliases", [])]
    seen, result = set(), []
    for v in out:
        if v and v != name and v not in seen:
            seen.add(v)
            result.append(v)
    return result


def _longest_run(codes: np.ndarray) -> np.ndarray:
    """Longest run of one non-blank option per row (codes 0-3 options, 4 blank)."""
    n, m = codes.shape
    run = np.zeros(n, dtype=np.int32)
    best = np.zeros(n, dtype=np.int32)
    for j in range(m):
        same = (codes[:, j] < 4) & ((codes[:, j] == codes[:, j - 1]) if j else False)
        run = np.where(same, run + 1, np.where(codes[:, j] < 4, 1, 0))
        best = np.maximum(best, run)
    return best


def _draw_fault_rows(n_base: int, k_dup: int, design: dict[str, np.ndarray], faults: bool,
                     rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[tuple[int, int]], np.ndarray]:
    """Rows of each fault (Binomial counts, overlaps allowed), borderline rows, near-duplicate
    pairs (source, copy) within a PSU, and the clean rows that get a later duplicate."""
    empty = np.array([], dtype=np.int64)
    if not faults:
        return ({f: empty for f in FAULT_RATES if f != "duplicate"},
                {f: empty for f in BORDERLINE_RATES}, [], empty)
    rows: dict[str, np.ndarray] = {}

    def pick(pool: np.ndarray, rate: float) -> np.ndarray:
        k = min(int(rng.binomial(n_base, rate)), len(pool))
        return np.sort(rng.choice(pool, k, replace=False)) if k else empty

    everyone = np.arange(n_base)
    for f in ("age_out_of_range", "missing_items", "variant_division", "speeder"):
        rows[f] = pick(everyone, FAULT_RATES[f])
    # straightliners: some among the speeders (two faults), the rest anywhere; never blanked
    k_sl = int(rng.binomial(n_base, FAULT_RATES["straightline"]))
    spd = np.setdiff1d(rows["speeder"], rows["missing_items"])
    k_a = min(int(round(SPEEDER_STRAIGHTLINE * k_sl)), len(spd))
    part_a = rng.choice(spd, k_a, replace=False) if k_a else empty
    rest = np.setdiff1d(everyone, np.concatenate([rows["missing_items"], part_a]))
    part_b = rng.choice(rest, min(k_sl - k_a, len(rest)), replace=False)
    rows["straightline"] = np.sort(np.concatenate([part_a, part_b]).astype(np.int64))
    faulty = np.unique(np.concatenate(list(rows.values())))
    pool = rng.permutation(np.setdiff1d(everyone, faulty))
    border: dict[str, np.ndarray] = {}
    k0 = 0
    for f in ("borderline_age", "borderline_duration"):
        k = int(rng.binomial(n_base, BORDERLINE_RATES[f]))
        border[f] = np.sort(pool[k0:k0 + k])
        k0 += k
    # near-duplicates: pairs of clean rows in the same PSU
    psu = design["psu_global"]
    k_near = int(rng.binomial(n_base, BORDERLINE_RATES["near_duplicate"]))
    pairs: list[tuple[int, int]] = []
    used: set[int] = set()
    waiting: dict[int, int] = {}          # PSU -> an unpaired clean row of it
    for r in pool[k0:]:
        if len(pairs) >= k_near:
            break
        r = int(r)
        mate = waiting.pop(int(psu[r]), None)
        if mate is None:
            waiting[int(psu[r])] = r
            continue
        src, dst = sorted((r, mate))
        pairs.append((src, dst))
        used |= {src, dst}
    border["near_duplicate"] = np.array(sorted(d for _, d in pairs), dtype=np.int64)
    clean_pool = np.setdiff1d(pool[k0:], np.array(sorted(used), dtype=np.int64))
    k_dup = min(k_dup, len(clean_pool))
    dup_src = rng.choice(clean_pool, k_dup, replace=False) if k_dup else empty
    return rows, border, pairs, np.asarray(dup_src, dtype=np.int64)


def generate_survey(plan: Any, year: int, n: int, seed: int, questionnaire: pd.DataFrame | None = None,
                    margins: pd.DataFrame | None = None, faults: bool = True,
                    population: Population | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw rows as docs/contracts.md, faults ground truth) for one survey year.

    population: the ``build_population`` result (built here from ``seed`` when not given;
    pass it when generating several years). Its item parameters, division effects and
    intercepts are the model; ``seed`` draws the sample, so samples with different seeds
    from one population are independent draws from the same truth. ``raw.attrs["calibration"]`` holds the intercept,
    the true share and the sample's raked estimate.
    """
    year = int(year)
    if n < 50:
        raise SynthError(f"n={n}: the generator needs at least 50 rows")
    q = questionnaire if questionnaire is not None else make_questionnaire(plan, seed)
    if margins is None:
        margins = census_margins(plan)
    st = strata_from_margins(margins)
    target = target_rate(plan, year)
    pop = population if population is not None else build_population(plan, seed, q, margins)
    if year not in pop.intercepts:
        raise SynthError(f"no target rate for {year} in the population path {sorted(pop.intercepts)}")
    # Each generator is drawn from in a fixed order (the helpers below keep it): same seed, same bytes.
    r_design, r_demo, r_ability, r_items, r_fault, r_misc = _rngs(seed, year, 6)
    k_dup = int(r_fault.binomial(n, FAULT_RATES["duplicate"])) if faults else 0
    n_base = n - k_dup
    design = _sample_design(st, n_base, r_design)
    s_idx = design["stratum_idx"]
    demo = _demographics(st, s_idx, _margin_male(margins), r_demo)
    correct, v = _right_answers(st, design, demo, pop, q, year, r_ability, r_items)
    fault_rows, borderline_rows, near_pairs, dup_src = _draw_fault_rows(n_base, k_dup, design, faults, r_fault)
    calibration = _sample_estimate(plan, year, st, margins, design, demo, correct, q, fault_rows)
    codes = _answer_codes(q, correct, v)
    del v, correct
    _copy_near_duplicates(codes, demo, near_pairs, len(q), r_fault)
    min_dur = plan.settings.survey.cleaning.min_duration_minutes
    duration, day = _durations_and_days(demo, design, min_dur, r_misc)
    county = st["division_code"].map(plan.division_names).to_numpy(dtype=object)[s_idx]
    age = demo["age"].copy()
    _set_borderline_values(age, duration, demo["age_group"], borderline_rows, min_dur)
    duration, details = _inject_faults(plan, q, st["division_code"].to_numpy()[s_idx], fault_rows,
                                       codes, age, county, duration, r_fault)
    cols = _base_columns(year, n, st, design, demo, age, county, duration, day)
    dups = _duplicates(cols, codes, dup_src, year, n, len(q), r_fault)
    order, pos = _final_order(n_base, dups["src"], r_fault)
    frame = {c: _concat_take(v_, dups["cols"][c], order) for c, v_ in cols.items()}
    all_codes = np.concatenate([codes, dups["codes"]])[order]
    del codes
    raw = _frame(frame, all_codes, q)
    fl = _faults_ledger(fault_rows, details, borderline_rows, near_pairs, dups, cols["resp_id"], pos,
                        age, duration)
    raw.attrs["calibration"] = {"year": year, "rule": plan.scoring_rule(year), "target": target,
                                "true_share": target, "intercept": pop.intercepts[year], **calibration}
    return raw, fl


def _right_answers(st: pd.DataFrame, design: dict[str, np.ndarray], demo: dict[str, np.ndarray],
                   pop: Population, q: pd.DataFrame, year: int, r_ability: np.random.Generator,
                   r_items: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(correct[i, j]: respondent i answers item j right, v: uniform 0-99 draws picking wrong answers)."""
    s_idx = design["stratum_idx"]
    n_base = len(s_idx)
    # ability and dimension traits (without the year intercept); one effect per PSU
    psu_eff = r_ability.normal(0, PSU_SD, int(design["n_psu"]))
    eta = _ability(st, s_idx, demo, pop.div_eff, psu_eff[design["psu_global"]], r_ability)
    eta_dim = np.column_stack([eta + DIM_OFFSET[d] + r_ability.normal(0, DIM_SD, n_base) for d in DIMENSIONS])
    level = pop.intercepts[year] + _drift_slope(st, s_idx, demo, pop.div_trend) * (year - REF_YEAR)
    dim_of_item, _ = _item_matrix(q)
    u = r_items.random((n_base, len(q)), dtype=np.float32)
    v = r_items.integers(0, 100, (n_base, len(q)), dtype=np.uint8)
    # the population's items (pop.item_a, pop.item_b): seed only draws this sample
    t = _thresholds(eta_dim, dim_of_item, pop.item_a, pop.item_b, u)
    del u
    return t < level[:, None], v


def _sample_estimate(plan: Any, year: int, st: pd.DataFrame, margins: pd.DataFrame,
                     design: dict[str, np.ndarray], demo: dict[str, np.ndarray], correct: np.ndarray,
                     q: pd.DataFrame, fault_rows: dict[str, np.ndarray]) -> dict[str, Any]:
    """The sample's own estimate over the rows a correct cleaning keeps, on the weights the
    estimate stage uses (raked to the census margins) and on the design weights."""
    dropped = np.zeros(len(correct), dtype=bool)
    for f in DROPPING_FAULTS:
        dropped[fault_rows.get(f, [])] = True
    calib = np.flatnonzero(~dropped)
    w = design["design_weight"]
    names = [m for m in plan.settings.survey.weighting.margins if m in MARGIN_CELLS]
    cells = _sample_cells(st, design["stratum_idx"][calib], {k: v_[calib] for k, v_ in demo.items()})
    bounds = plan.settings.survey.weighting.bounds or (0.2, 5.0)
    w_cal = rake_weights(w[calib], cells, margins, names, tuple(bounds) if bounds else None)
    _, pts = _item_matrix(q)
    achieved = _weighted_rate(correct[calib], pts, w_cal, plan, year)
    achieved_design = _weighted_rate(correct[calib], pts, w[calib], plan, year)
    return {"achieved": round(achieved, 4), "achieved_design": round(achieved_design, 4),
            "weights": "raked to " + "+".join(names), "calibration_rows": int(len(calib))}


def _answer_codes(q: pd.DataFrame, correct: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Answers as option index 0-3, 4 blank: the key when right, else another option or blank."""
    key = q["correct"].map({o: k for k, o in enumerate(OPTIONS)}).to_numpy().astype(np.int8)
    wrong = ((key[None, :] + 1 + (v % 3)) % 4).astype(np.int8)
    codes = np.where(correct, key[None, :], np.where(v < int(SKIP_SHARE * 100), np.int8(4), wrong))
    return codes.astype(np.int8)


def _copy_near_duplicates(codes: np.ndarray, demo: dict[str, np.ndarray], near_pairs: list[tuple[int, int]],
                          m: int, rng: np.random.Generator) -> None:
    """In place: each pair's second respondent (same PSU) takes the first one's demographics and
    answers, then one or two answers change (a correct cleaning keeps both)."""
    for src, dst in near_pairs:
        for k_ in ("male", "age", "age_group", "edu", "occ"):
            demo[k_][dst] = demo[k_][src]
        codes[dst] = codes[src]
        for j in rng.choice(m, int(rng.integers(1, 3)), replace=False):
            codes[dst, j] = (codes[dst, j] + 1) % 4 if codes[dst, j] < 4 else int(rng.integers(0, 4))


def _durations_and_days(demo: dict[str, np.ndarray], design: dict[str, np.ndarray], min_dur: float,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Interview duration (minutes, above the speeder threshold) and day of the year (PSUs share a week)."""
    n_base = len(demo["age"])
    duration = np.clip(np.exp(rng.normal(np.log(24.0) + 0.004 * (demo["age"] - 40), 0.3, n_base)),
                       min_dur + 2.0, 90.0)
    psu_day = rng.integers(59, 320, int(design["n_psu"]))
    day = np.minimum(psu_day[design["psu_global"]] + rng.integers(0, 4, n_base), 360)
    return duration, day


def _set_borderline_values(age: np.ndarray, duration: np.ndarray, age_group: np.ndarray,
                           borderline_rows: dict[str, np.ndarray], min_dur: float) -> None:
    """In place: ages exactly 18 or 69 and durations exactly at the threshold (kept by cleaning)."""
    rows = borderline_rows["borderline_age"]
    age[rows] = np.where(age_group[rows] <= 1, 18, 69)
    duration[borderline_rows["borderline_duration"]] = min_dur


def _inject_faults(plan: Any, q: pd.DataFrame, div_codes: np.ndarray, fault_rows: dict[str, np.ndarray],
                   codes: np.ndarray, age: np.ndarray, county: np.ndarray, duration: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Each fault kind in turn (a row may carry several): codes, age and county change in place;
    returns (durations rounded to 0.1 min, the detail text per fault kind and row)."""
    def rows_of(f: str) -> np.ndarray:
        return fault_rows.get(f, np.array([], int))

    details = {"age_out_of_range": _ages_out_of_range(age, rows_of("age_out_of_range"), rng),
               "missing_items": _blank_core_items(codes, rows_of("missing_items"), q, rng),
               "variant_division": _variant_divisions(plan, county, div_codes, rows_of("variant_division"),
                                                      rng)}
    min_dur = plan.settings.survey.cleaning.min_duration_minutes
    duration, details["speeder"] = _speeders(duration, rows_of("speeder"), min_dur, rng)
    max_run = plan.settings.survey.cleaning.max_straightline_run
    details["straightline"] = _straightlines(codes, rows_of("straightline"), q, max_run, rng)
    return duration, details


def _ages_out_of_range(age: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> list[str]:
    """In place: ages 0, 16, 17, 70-85 or 999 (17 and 70 most often)."""
    bad_ages = np.array([0, 16, 17, 70, *range(71, 86), 999])
    p_bad = np.array([0.04, 0.08, 0.25, 0.25, *([0.28 / 15] * 15), 0.10])
    age[rows] = rng.choice(bad_ages, len(rows), p=p_bad / p_bad.sum())
    return [f"age {x}" for x in age[rows]]


def _blank_core_items(codes: np.ndarray, rows: np.ndarray, q: pd.DataFrame, rng: np.random.Generator) -> list[str]:
    """In place: 30-100% of the core items of each row left blank."""
    core_idx = np.flatnonzero(q["core"].to_numpy(bool))
    k_blank = rng.integers(int(np.ceil(0.3 * len(core_idx))), len(core_idx) + 1, len(rows))
    order = np.argsort(rng.random((len(rows), len(core_idx))), axis=1)
    for r, k, o in zip(rows, k_blank, order, strict=True):
        codes[r, core_idx[o[:k]]] = 4
    return [f"{k} of {len(core_idx)} core items blank" for k in k_blank]


def _variant_divisions(plan: Any, county: np.ndarray, div_codes: np.ndarray, rows: np.ndarray,
                       rng: np.random.Generator) -> list[str]:
    """In place: the county written another way (``division_variants``)."""
    det = []
    variants = {c: division_variants(plan, c) for c in plan.division_names}
    for r in rows:
        code = div_codes[r]
        cands = variants[code]
        county[r] = cands[int(rng.integers(0, len(cands)))]
        det.append(f"county {county[r]!r} is {code} {plan.division_names[code]}")
    return det


def _speeders(duration: np.ndarray, rows: np.ndarray, min_dur: float,
              rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Durations below the threshold (a quarter just 0.1 below); all durations rounded to 0.1 min."""
    duration[rows] = np.where(rng.random(len(rows)) < 0.25, min_dur - 0.1,
                              rng.uniform(1.5, min_dur - 0.5, len(rows)))
    duration = np.round(duration, 1)
    return duration, [f"duration {d:.1f} min < {min_dur:g}" for d in duration[rows]]


def _straightlines(codes: np.ndarray, rows: np.ndarray, q: pd.DataFrame, max_run: int,
                   rng: np.random.Generator) -> list[str]:
    """In place: one option on a run of items longer than max_run."""
    m = len(q)
    run_len = rng.integers(min(max(20, max_run + 5), m), m + 1, len(rows))
    start = np.array([int(rng.integers(0, m - L + 1)) for L in run_len], dtype=np.int64)
    opt = rng.integers(0, 4, len(rows))
    det = []
    for r, L, s0, o in zip(rows, run_len, start, opt, strict=True):
        codes[r, s0:s0 + L] = o
        det.append(f"{q['item_id'].iat[s0]}-{q['item_id'].iat[s0 + L - 1]} all {OPTIONS[o]} ({L} items)")
    return det


def _base_columns(year: int, n: int, st: pd.DataFrame, design: dict[str, np.ndarray],
                  demo: dict[str, np.ndarray], age: np.ndarray, county: np.ndarray, duration: np.ndarray,
                  day: np.ndarray) -> dict[str, Any]:
    """The base rows' columns (unique strings built in Arrow: no million Python objects)."""
    s_idx = design["stratum_idx"]
    id_width = max(6, len(str(n)))
    ids = np.arange(len(s_idx))
    dates = (np.datetime64(f"{year}-01-01") + day.astype("timedelta64[D]")).astype("datetime64[D]")
    stratum = st["stratum"].to_numpy(dtype=object)[s_idx]
    psu_w = max(3, len(str(int(design["psu_num"].max()))))
    return {
        "resp_id": _ids(f"R{year}-", ids, id_width), "name": _ids("受访者", ids, id_width),
        "phone": _ids("100-0000-", ids % 10000, 4), "county": county, "stratum": stratum,
        "psu": pc.binary_join_element_wise(pa.array(stratum, pa.string()),
                                           _ids("", design["psu_num"], psu_w), "-"),
        "design_weight": np.round(design["design_weight"], 4),
        "sex": np.where(demo["male"], "男", "女").astype(object),
        "age": age.astype(np.int64),
        "urban_rural": np.where(demo["urban"], URBAN, RURAL).astype(object),
        "education": np.array(EDUCATION, dtype=object)[demo["edu"]],
        "occupation": np.array(OCCUPATIONS, dtype=object)[demo["occ"]],
        "duration_min": duration, "interview_date": pc.cast(pa.array(dates), pa.string()),
    }


def _duplicates(cols: dict[str, Any], codes: np.ndarray, dup_src: np.ndarray, year: int, n: int, m: int,
                rng: np.random.Generator) -> dict[str, Any]:
    """Later copies of the rows dup_src: exact, re-entered (a few answers, duration and date
    differ) or under a new resp_id. Returns their kinds, sources, columns and answer codes."""
    n_base, k_dup = len(codes), len(dup_src)
    kinds = rng.choice(["exact", "reentered", "new_id"], k_dup, p=[0.5, 0.3, 0.2])
    src = np.asarray(dup_src, dtype=np.int64)
    dup_cols = {c: _take(v, src) for c, v in cols.items()}
    dup_codes = codes[src].copy()
    new_ids = _ids(f"R{year}-", np.arange(n_base, n_base + k_dup), max(6, len(str(n)))).to_pylist()
    for k in np.flatnonzero(kinds == "new_id"):
        dup_cols["resp_id"][k] = new_ids[k]
    for k in np.flatnonzero(kinds == "reentered"):
        dup_cols["duration_min"][k] = round(float(dup_cols["duration_min"][k]) * float(rng.uniform(1.02, 1.2)), 1)
        d = np.datetime64(dup_cols["interview_date"][k]) + int(rng.integers(1, 4))
        dup_cols["interview_date"][k] = str(min(d, np.datetime64(f"{year}-12-31")))
        for j in rng.choice(m, int(rng.integers(1, 4)), replace=False):
            cur = dup_codes[k, j]
            dup_codes[k, j] = (cur + 1) % 4 if cur < 4 else int(rng.integers(0, 4))
    return {"kinds": kinds, "src": src, "cols": dup_cols, "codes": dup_codes}


def _final_order(n_base: int, src: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(order: base rows then copies, each copy somewhere after its source; pos: final row of each)."""
    k_dup = len(src)
    sort_key = np.concatenate([np.arange(n_base, dtype=np.float64),
                               src + 0.5 + rng.random(k_dup) * (n_base - src - 0.5)])
    order = np.argsort(sort_key, kind="stable")
    pos = np.empty(n_base + k_dup, dtype=np.int64)
    pos[order] = np.arange(n_base + k_dup)
    return order, pos


def _faults_ledger(fault_rows: dict[str, np.ndarray], details: dict[str, list[str]],
                   borderline_rows: dict[str, np.ndarray], near_pairs: list[tuple[int, int]],
                   dups: dict[str, Any], resp_id: pa.Array, pos: np.ndarray, age: np.ndarray,
                   duration: np.ndarray) -> pd.DataFrame:
    """The faults file: one line per row and fault (final row number, resp_id, fault, detail)."""
    recs = []
    for f in ("age_out_of_range", "missing_items", "variant_division", "speeder", "straightline"):
        rows = fault_rows.get(f, np.array([], np.int64))
        for r, rid, d in zip(rows, _take(resp_id, rows), details.get(f, []), strict=True):
            recs.append((int(pos[r]), rid, f, d))
    border_text = {"borderline_age": "age {age} (inside the survey range)",
                   "borderline_duration": "duration {dur:.1f} min = threshold (not a speeder)"}
    for f, rows in borderline_rows.items():
        if f == "near_duplicate":
            continue
        for r, rid in zip(rows, _take(resp_id, rows), strict=True):
            recs.append((int(pos[r]), rid, f, border_text[f].format(age=int(age[r]), dur=duration[r])))
    for (src_, dst_), rid in zip(near_pairs, _take(resp_id, np.array([d for _, d in near_pairs],
                                                                     dtype=np.int64)), strict=True):
        recs.append((int(pos[dst_]), rid, "near_duplicate",
                     f"same demographics as row {int(pos[src_])}, one or two answers differ (not a copy)"))
    kind_text = {"exact": "exact copy of row {}", "reentered": "same resp_id as row {}, re-entered",
                 "new_id": "copy of row {} under a new resp_id"}
    n_base = len(pos) - len(dups["src"])
    for k in range(len(dups["src"])):
        recs.append((int(pos[n_base + k]), dups["cols"]["resp_id"][k], "duplicate",
                     kind_text[dups["kinds"][k]].format(int(pos[dups["src"][k]]))))
    fl = pd.DataFrame(recs, columns=["row", "resp_id", "fault", "detail"])
    fl = fl.sort_values(["row", "fault"], kind="stable")
    return fl.reset_index(drop=True).astype({"row": np.int64, "resp_id": "str", "fault": "str", "detail": "str"})


def _margin_male(margins: pd.DataFrame) -> float:
    sa = margins[margins["margin"] == "sex_age"]
    tot = sa["population"].sum()
    return float(sa.loc[sa["sex"] == "男", "population"].sum() / tot) if tot else 0.5


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """prefix + zero-padded numbers, as an Arrow string array."""
    s = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, s, "") if prefix else s


def _take(v: Any, idx: np.ndarray) -> np.ndarray:
    """Rows idx of a column as a small, editable NumPy array."""
    idx = np.asarray(idx, dtype=np.int64)
    if isinstance(v, pa.Array):
        return np.array(v.take(pa.array(idx)).to_pylist(), dtype=object)
    return v[idx].copy()


def _concat_take(base: Any, extra: np.ndarray, order: np.ndarray) -> Any:
    if isinstance(base, pa.Array):
        return pa.concat_arrays([base, pa.array(list(extra), type=base.type)]).take(pa.array(order))
    return np.concatenate([base, extra])[order]


def _frame(cols: dict[str, Any], codes: np.ndarray, q: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for c, v in cols.items():
        if c in ("design_weight", "duration_min"):
            out[c] = v.astype(np.float64)
        elif c == "age":
            out[c] = v.astype(np.int64)
        else:
            out[c] = pd.array(v if isinstance(v, pa.Array) else pa.array(v, type=pa.string()), dtype="str")
    # answers: take from a 5-entry Arrow array (A-D, null), far faster than object arrays
    opts = pa.array([*OPTIONS, None], type=pa.string())
    for j, item in enumerate(q["item_id"]):
        out[item] = pd.array(opts.take(pa.array(codes[:, j])), dtype="str")
    return pd.DataFrame(out)
