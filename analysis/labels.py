"""Chinese labels of estimate domains, their levels and the indicators, shared by the stages."""

from __future__ import annotations

from .config import Plan

# Order matters: tables and figures list domains in this order.
DOMAIN_NAMES_ZH = {"city": "全市", "division": "县（市、区）", "urban_rural": "城乡", "sex": "性别",
                   "age_group": "年龄组", "education": "文化程度", "occupation": "职业",
                   "key_group": "重点人群"}
# Other spellings of a domain used as keys in stage outputs (county_gaps.json: "divisions").
_ALIASES = {"divisions": "division", "key_groups": "key_group"}


def domain_label_zh(domain: str) -> str:
    """Chinese name of a domain (or of its plural alias); the id itself when unknown."""
    return DOMAIN_NAMES_ZH.get(_ALIASES.get(domain, domain), domain)


def level_label_zh(plan: Plan, domain: str, level: str) -> str:
    """Chinese label of a domain level (division name, key group name; others are Chinese already)."""
    domain = _ALIASES.get(domain, domain)
    if domain == "city":
        return plan.name_zh
    if domain == "division":
        return plan.division_names.get(str(level), str(level))
    if domain == "key_group":
        groups = {str(g["id"]): g.get("name_zh", g["id"]) for g in plan.settings.literacy.key_groups}
        return groups.get(str(level), str(level))
    return str(level)


def indicator_names_zh(plan: Plan) -> dict[str, str]:
    """Chinese names of the indicators for tables and figures."""
    names = {"literate": plan.settings.literacy.indicator_zh,
             "mean_score_total": "平均总分"}
    for lv in plan.settings.scoring.score.levels:
        names[f"level_{lv['id']}"] = f"{lv['name_zh']}比例"
    for dim in plan.settings.scoring.score.dimensions:
        names[f"mean_score_{dim['id']}"] = f"{dim['name_zh']}平均得分"
    return names


# Verdicts on a gap or an inequality measure between two years (stage 04, trajectory, report).
VERDICTS = {
    "improved": ("明显缩小", "narrowed clearly"),
    "worsened": ("明显扩大", "widened clearly"),
    "no_clear_change": ("无明显变化", "no clear change"),
}
VERDICT_ZH = {code: words[0] for code, words in VERDICTS.items()}
