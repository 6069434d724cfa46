"""Stage 02: calibrate weights and estimate every indicator by every domain for one year."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Plan, processed_dir
from .disclosure import disclosure_limits, flag_cells
from .estimate import (
    Calibration,
    Design,
    confidence_interval,
    domain_means,
    estimate_domains,
)
from .jsonio import write_json
from .vocabulary import DOMAIN_NAMES_ZH, indicator_names_zh, level_label_zh  # noqa: F401 (re-exported)
from .weighting import calibrate, read_census_margins, weighting_settings

STAGE = "02_weight_estimate"
COLUMNS = ["year", "indicator", "domain", "level", "n", "estimate", "se", "ci_low", "ci_high",
           "deff", "n_eff", "cv", "suppressed", "suppress_reason"]
# Partition domains: domain name -> column of the clean table
DOMAIN_COLUMNS = {"division": "division_code", "urban_rural": "urban_rural", "sex": "sex",
                  "age_group": "age_group", "education": "education", "occupation": "occupation"}
DIMENSION_FALLBACK = ("knowledge", "method", "spirit", "application")
LEVEL_FALLBACK = ("advanced", "literate", "basic", "low")


class EstimateStageError(ValueError):
    """Stage 02 inputs are missing or do not follow the contract."""


def _indicators(df: pd.DataFrame, plan: Plan) -> list[tuple[str, np.ndarray, bool]]:
    """(indicator id, values per row, is a share) for every indicator the table supports."""
    out = []
    if "literate" not in df.columns:
        raise EstimateStageError("survey_clean has no 'literate' column")
    lit = pd.to_numeric(df["literate"].astype("boolean"), errors="coerce").to_numpy(float, na_value=np.nan)
    out.append(("literate", lit, True))
    levels = [str(x["id"]) for x in plan.settings.scoring.score.levels] or list(LEVEL_FALLBACK)
    if "level" in df.columns:
        lv = df["level"].astype("string")
        for lid in levels:
            v = (lv == lid).astype("boolean").to_numpy(float, na_value=np.nan)
            out.append((f"level_{lid}", v, True))
    dims = [str(x["id"]) for x in plan.settings.scoring.score.dimensions] or list(DIMENSION_FALLBACK)
    for col in ["score_total", *[f"score_{d}" for d in dims]]:
        if col in df.columns:
            out.append((f"mean_{col}", pd.to_numeric(df[col], errors="coerce").to_numpy(float), False))
    return out


def key_group_masks(df: pd.DataFrame, plan: Plan) -> dict[str, np.ndarray]:
    """Membership of each key group of the plan (groups may overlap: elderly farmers)."""
    masks = {}
    for g in plan.settings.literacy.key_groups:
        rule = g.get("rule", {})
        m = np.ones(len(df), bool)
        if "occupation" in rule:
            m &= (df["occupation"].astype("string") == str(rule["occupation"])).fillna(False).to_numpy(bool)
        if "age_min" in rule or "age_max" in rule:
            age = pd.to_numeric(df["age"], errors="coerce").to_numpy(float)
            m &= (age >= float(rule.get("age_min", -np.inf))) & (age <= float(rule.get("age_max", np.inf)))
        masks[str(g["id"])] = m
    return masks


def level_order(plan: Plan) -> dict[str, list[str]]:
    """Natural order of the levels of each domain (plan order of divisions, dictionary order)."""
    order = {"city": ["all"], "division": list(plan.division_names),
             "key_group": [str(g["id"]) for g in plan.settings.literacy.key_groups]}
    try:
        from .dictionary import load_dictionary
        d = load_dictionary()
        for dom, col in DOMAIN_COLUMNS.items():
            if dom not in order and d.allowed(col):
                order[dom] = list(d.allowed(col))
    except (ImportError, OSError, KeyError):  # ordering is cosmetic; fall back to sorted
        pass
    return order


def _level_rank(table: pd.DataFrame, plan: Plan) -> np.ndarray:
    order = level_order(plan)
    return np.array([order.get(d, []).index(lv) if lv in order.get(d, []) else 999
                     for d, lv in zip(table["domain"], table["level"].astype(str), strict=True)])


def _rows(res: pd.DataFrame, year: int, indicator: str, domain: str, share: bool) -> pd.DataFrame:
    res = res.copy()
    if share:  # contract: shares in percent
        for c in ("estimate", "se", "ci_low", "ci_high"):
            res[c] = res[c] * 100
    res["year"], res["indicator"], res["domain"] = year, indicator, domain
    return res


def estimate_table(df: pd.DataFrame, design: Design, plan: Plan, year: int) -> pd.DataFrame:
    """Every indicator by every domain (tidy, contract columns), disclosure flags included."""
    parts = []
    groups = key_group_masks(df, plan)
    for indicator, y, share in _indicators(df, plan):
        if np.isnan(y).all():
            continue
        parts.append(_rows(estimate_domains(design, y, None, share), year, indicator, "city", share))
        for domain, col in DOMAIN_COLUMNS.items():
            if col in df.columns:
                labels = df[col].astype("string").reset_index(drop=True)
                res = estimate_domains(design, y, labels.fillna("<NA>"), share)
                parts.append(_rows(res[res["level"] != "<NA>"], year, indicator, domain, share))
        for gid, mask in groups.items():
            codes = np.where(mask, 0, -1)
            res = domain_means(design, y, codes, 1)
            res.insert(0, "level", [gid])
            res["ci_low"], res["ci_high"] = confidence_interval(res["estimate"], res["se"],
                                                                res["df"], share)
            with np.errstate(invalid="ignore", divide="ignore"):
                res["n_eff"] = res["n"] / res["deff"]
                res["cv"] = res["se"] / res["estimate"].abs()
            parts.append(_rows(res, year, indicator, "key_group", share))
    table = pd.concat(parts, ignore_index=True)
    table = table.iloc[np.lexsort((_level_rank(table, plan), table["domain"].map(
        {d: i for i, d in enumerate(DOMAIN_NAMES_ZH)}).to_numpy(),
        table["indicator"].map({k: i for i, k in enumerate(dict.fromkeys(
            p[0] for p in _indicators(df, plan)))}).to_numpy()))].reset_index(drop=True)
    min_n, max_cv = disclosure_limits(plan)
    table = flag_cells(table, min_n, max_cv)
    table["n"] = table["n"].astype("int64")
    table["year"] = table["year"].astype("int64")
    table["level"] = table["level"].astype(str)
    return table[COLUMNS]


def design_for(df: pd.DataFrame, weights: np.ndarray, plan: Plan, codes: list[np.ndarray],
               method: str) -> Design:
    """The sample design with the final weights and the calibration the variance accounts for."""
    lonely = plan.settings.survey.variance.lonely_psu
    cal = None
    if plan.settings.survey.variance.calibration:
        if method == "rake":
            cal = Calibration("raking", tuple(codes))
        elif method == "poststratify":
            cal = Calibration("poststratify", tuple(codes),
                              design_weights=df["design_weight"].to_numpy(float))
    return Design.from_frame(df, weights, "stratum", "psu", lonely_psu=lonely, calibration=cal)


def plot_by_group(table: pd.DataFrame, plan: Plan, year: int, path: Path) -> Path:
    """Share 具备科学素质 by group with 95% intervals; suppressed cells greyed and marked."""
    from .plotting import plt, save_figure, use_cjk_font

    use_cjk_font()
    t = table[(table["indicator"] == "literate") & (table["domain"] != "city")]
    city = table[(table["indicator"] == "literate") & (table["domain"] == "city")].iloc[0]
    domains = [d for d in DOMAIN_NAMES_ZH if d in set(t["domain"])]
    heights = [max(2, (t["domain"] == d).sum()) for d in domains]
    fig, axes = plt.subplots(len(domains), 1, figsize=(7.5, 0.26 * sum(heights) + 0.9 * len(domains)),
                             gridspec_kw={"height_ratios": heights}, sharex=True)
    axes = np.atleast_1d(axes)
    for ax, dom in zip(axes, domains, strict=True):
        part = t[t["domain"] == dom].reset_index(drop=True)
        labels = [level_label_zh(plan, dom, lv) for lv in part["level"]]
        ypos = np.arange(len(part))[::-1]
        ok = ~part["suppressed"].to_numpy(bool)
        err = np.vstack([part["estimate"] - part["ci_low"], part["ci_high"] - part["estimate"]])
        err = np.nan_to_num(err)
        ax.barh(ypos[ok], part["estimate"][ok], color="#3b6ea5", height=0.6)
        ax.errorbar(part["estimate"][ok], ypos[ok], xerr=err[:, ok], fmt="none", ecolor="black",
                    capsize=2, lw=0.8)
        for yy in ypos[~ok]:  # suppressed cells are not published, not even as a bar
            ax.text(0.5, yy, "样本不足或抽样误差过大，不发布", va="center", fontsize=7, color="#777777")
        ax.set_yticks(ypos, labels, fontsize=8)
        ax.set_ylim(-0.6, len(part) - 0.4)
        ax.axvline(city["estimate"], color="#c0392b", ls="--", lw=0.9)
        ax.set_title(DOMAIN_NAMES_ZH[dom], fontsize=9, loc="left")
    axes[-1].set_xlabel("具备科学素质的比例（%），横线为95%置信区间，虚线为全市")
    fig.suptitle(f"{plan.name_zh}{year}年公民具备科学素质的比例：分群体估计", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    return save_figure(fig, path)


def run_estimate(plan: Plan, year: int, processed_root: Path | None = None) -> dict[str, Any]:
    """Weight and estimate one survey year; write weights, diagnostics, estimates, figure, manifest."""
    from .provenance import write_manifest

    out_dir = processed_dir(plan.city, year, processed_root)
    clean_path = out_dir / "survey_clean.parquet"
    if not clean_path.exists():
        raise EstimateStageError(f"{clean_path} not found: run stage 01 (clean) for {year} first")
    df = pd.read_parquet(clean_path).reset_index(drop=True)
    need = ["resp_key", "stratum", "psu", "design_weight", "division_code", "urban_rural", "sex",
            "age_group", "education"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise EstimateStageError(f"{clean_path}: missing column(s) {missing}")
    settings = weighting_settings(plan)
    margins_path = plan.census_margins_path
    margins = read_census_margins(margins_path, settings["margins"])
    result, diag = calibrate(df, margins, settings)
    diag["year"] = year
    diag["census_margins"] = str(margins_path)
    weights = result.weights
    design = design_for(df, weights, plan, result.codes, result.method)
    diag["variance"] = {"method": "Taylor linearisation, ultimate clusters with replacement",
                        "lonely_psu": design.lonely_psu,
                        "calibration_adjustment": design.calibration is not None,
                        "strata": design.n_strata, "psus": design.n_psu,
                        "single_psu_strata": int((design.psu_per_stratum == 1).sum()),
                        "matches_r": "survey::svydesign(ids=~psu, strata=~stratum, nest=TRUE) + "
                                     "rake()/postStratify(); svyby, svyciprop(method='logit')"}
    table = estimate_table(df, design, plan, year)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"weights": out_dir / "weights.parquet",
             "diagnostics": out_dir / "weighting_diagnostics.json",
             "estimates": out_dir / "estimates.parquet",
             "figure": out_dir / "figures" / "estimates_by_group.png"}
    pd.DataFrame({"resp_key": df["resp_key"], "design_weight": df["design_weight"].astype(float),
                  "weight": weights}).to_parquet(paths["weights"], index=False)
    write_json(paths["diagnostics"], diag)
    table.to_parquet(paths["estimates"], index=False)
    plot_by_group(table, plan, year, paths["figure"])
    params = {"city": plan.city, "year": year, **{f"weighting_{k}": v for k, v in settings.items()},
              "lonely_psu": design.lonely_psu,
              "min_n": disclosure_limits(plan)[0], "max_cv": disclosure_limits(plan)[1]}
    manifest = write_manifest(out_dir, STAGE, [clean_path, margins_path, plan.path],
                              list(paths.values()), params)
    city = table[(table["indicator"] == "literate") & (table["domain"] == "city")].iloc[0]
    return {"year": year, "n": len(df), "estimates": table, "diagnostics": diag,
            "literate": {k: float(city[k]) for k in ("estimate", "se", "ci_low", "ci_high", "deff")},
            "paths": {k: str(v) for k, v in paths.items()}, "manifest": str(manifest)}


# Columns every reader of estimates.parquet relies on (docs/contracts.md)
ESTIMATE_REQUIRED = ("year", "indicator", "domain", "level", "n", "estimate", "se", "suppressed")


def estimate_files(plan: Plan, processed_root: Path | None = None, years: list[int] | None = None,
                   up_to: int | None = None, since: int | None = None) -> dict[int, Path]:
    """Existing estimates.parquet per survey year (plan.survey_years or `years`, within since..up_to)."""
    years = plan.survey_years if years is None else years
    out = {}
    for y in sorted(int(y) for y in years):
        if (up_to is not None and y > up_to) or (since is not None and y < since):
            continue
        p = processed_dir(plan.city, y, processed_root) / "estimates.parquet"
        if p.is_file():
            out[y] = p
    return out


def read_estimates_file(path: Path, year: int | None = None,
                        need: tuple[str, ...] = ESTIMATE_REQUIRED) -> pd.DataFrame:
    """One estimates.parquet, checked: columns `need` present, `year` int (= year if given), level str."""
    path = Path(path)
    if not path.is_file():
        raise EstimateStageError(f"{path} not found: run stage 02 (weight and estimate) first")
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise EstimateStageError(f"{path}: not a readable parquet file ({err})") from err
    if missing := [c for c in dict.fromkeys(("year", "level", *need)) if c not in df.columns]:
        raise EstimateStageError(f"{path}: missing column(s) {missing} (expected the stage 02 "
                                 "contract, docs/contracts.md)")
    yrs = pd.to_numeric(df["year"], errors="coerce")
    if yrs.isna().any():
        row = int(np.flatnonzero(yrs.isna().to_numpy())[0])
        raise EstimateStageError(f"{path}: row {row}, column 'year': value {df['year'].iloc[row]!r} "
                                 "is not a year")
    df["year"] = yrs.astype("int64")
    if year is not None and (bad := df["year"] != int(year)).any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise EstimateStageError(f"{path}: row {row}, column 'year': value {int(df['year'].iloc[row])} "
                                 f"in the file of survey year {year}")
    df["level"] = df["level"].astype(str)
    return df


def load_estimates(plan: Plan, processed_root: Path | None = None, years: list[int] | None = None,
                   up_to: int | None = None, since: int | None = None, indicator: str | None = None,
                   require: list[int] | tuple[int, ...] = (),
                   need: tuple[str, ...] = ESTIMATE_REQUIRED) -> pd.DataFrame:
    """estimates.parquet of every year that has one, stacked (the cross-year comparison).

    years: candidate survey years (default plan.survey_years), kept within since..up_to;
    indicator: keep one indicator only; require: years whose file must exist;
    need: columns every file must have (default the contract columns readers rely on).
    The paths read are `estimate_files(...)` with the same arguments (for manifests).
    """
    return load_estimates_with_paths(plan, processed_root, years, up_to, since, indicator, require,
                                     need)[0]


def load_estimates_with_paths(plan: Plan, processed_root: Path | None = None,
                              years: list[int] | None = None, up_to: int | None = None,
                              since: int | None = None, indicator: str | None = None,
                              require: list[int] | tuple[int, ...] = (),
                              need: tuple[str, ...] = ESTIMATE_REQUIRED
                              ) -> tuple[pd.DataFrame, list[Path]]:
    """load_estimates and the files it read (inputs of a stage manifest)."""
    files = estimate_files(plan, processed_root, years, up_to, since)
    for y in require:
        if int(y) not in files:
            p = processed_dir(plan.city, int(y), processed_root) / "estimates.parquet"
            raise EstimateStageError(f"{p} not found: run stage 02 for {int(y)} first")
    if not files:
        where = processed_dir(plan.city, None, processed_root)
        span = f" <= {up_to}" if up_to is not None else ""
        raise EstimateStageError(f"no estimates.parquet for {plan.city} in survey years{span} under "
                                 f"{where}: run stage 02 first")
    parts = []
    for y, p in files.items():
        d = read_estimates_file(p, y, need)
        parts.append(d[d["indicator"] == indicator] if indicator is not None else d)
    table = pd.concat(parts, ignore_index=True)
    return (table.sort_values(["indicator", "domain", "level", "year"], ignore_index=True),
            list(files.values()))


def compare_years(table: pd.DataFrame, indicator: str = "literate", domain: str = "city") -> pd.DataFrame:
    """One indicator for one domain across years, wide by level (estimate, CI, suppressed)."""
    t = table[(table["indicator"] == indicator) & (table["domain"] == domain)]
    return t.pivot_table(index="level", columns="year", values="estimate", aggfunc="first")


def domain_table_zh(table: pd.DataFrame, plan: Plan, indicator: str = "literate",
                    year: int | None = None) -> pd.DataFrame:
    """Published table of one indicator by group, Chinese headers; suppressed cells blanked."""
    from .disclosure import publishable

    t = table[table["indicator"] == indicator]
    if year is not None:
        t = t[t["year"] == year]
    t = publishable(t)
    unit = "（%）" if indicator.startswith(("literate", "level_")) else "（分）"
    return pd.DataFrame({
        "年份": t["year"].to_numpy(),
        "分组": t["domain"].map(DOMAIN_NAMES_ZH).to_numpy(),
        "类别": [level_label_zh(plan, d, lv) for d, lv in zip(t["domain"], t["level"], strict=True)],
        "样本量": t["n"].to_numpy(),
        f"估计值{unit}": t["estimate"].round(2).to_numpy(),
        "标准误": t["se"].round(2).to_numpy(),
        "95%置信区间下限": t["ci_low"].round(2).to_numpy(),
        "95%置信区间上限": t["ci_high"].round(2).to_numpy(),
        "设计效应": t["deff"].round(2).to_numpy(),
        "有效样本量": t["n_eff"].round(0).to_numpy(),
        "变异系数": t["cv"].round(3).to_numpy(),
        "备注": np.where(t["suppressed"].astype(bool), "不发布：" + t["suppress_reason"].astype(str), ""),
    })
