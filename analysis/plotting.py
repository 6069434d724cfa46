"""Matplotlib set-up for report figures: CJK font from a registry package, print resolution."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

PRINT_DPI = 300


@cache
def cjk_font_path() -> Path:
    """Static Noto Sans CJK SC Regular shipped by the mplfonts wheel (OFL)."""
    import mplfonts

    path = Path(mplfonts.__file__).parent / "fonts" / "NotoSansCJKsc-Regular.otf"
    if not path.exists():
        raise FileNotFoundError(f"CJK font missing: {path}; reinstall mplfonts")
    return path


@cache
def use_cjk_font() -> str:
    """Register the CJK font with matplotlib and make it the default; returns its family name."""
    path = cjk_font_path()
    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["font.sans-serif"] = [family, "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    plt.rcParams["savefig.dpi"] = PRINT_DPI
    plt.rcParams["figure.dpi"] = 100
    return family


def save_figure(fig, path: Path) -> Path:
    """Save at print resolution, creating the folder; closes the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=PRINT_DPI, bbox_inches="tight")
    plt.close(fig)
    return path
