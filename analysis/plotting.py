"""Matplotlib set-up for report figures: the font of the figure's language, print resolution.

Chinese figures use Noto Sans CJK SC (mplfonts wheel, OFL); English figures use
DejaVu Sans, the Latin font shipped with matplotlib, so no glyph of an English
figure is taken from a CJK font. Every saved PNG carries the figure's text in
its Description chunk, so tests can read what a figure says.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.text import Text  # noqa: E402

PRINT_DPI = 300
TEXT_WIDTH_IN = 15.6 / 2.54
"""Width of the report's text area (A4 less the template's margins, reports/template/cityreport.typ)."""
TEXT_HEIGHT_IN = 23.7 / 2.54
PRINT_WIDTH_IN = 0.9 * TEXT_WIDTH_IN
"""Widest a figure is saved: it then prints at its own size, so a font size set in points is the printed size."""
MIN_FONT_PT = 7.0
LATIN_FONT = "DejaVu Sans"


@cache
def cjk_font_path() -> Path:
    """Static Noto Sans CJK SC Regular shipped by the mplfonts wheel (OFL)."""
    import mplfonts

    path = Path(mplfonts.__file__).parent / "fonts" / "NotoSansCJKsc-Regular.otf"
    if not path.exists():
        raise FileNotFoundError(f"CJK font missing: {path}; reinstall mplfonts")
    return path


@cache
def _cjk_family() -> str:
    path = cjk_font_path()
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def use_font(lang: str = "zh") -> str:
    """Make the language's font matplotlib's default (CJK for zh, Latin for en); returns its family name."""
    if lang not in ("zh", "en"):
        raise ValueError(f"lang must be 'zh' or 'en', not {lang!r}")
    family = _cjk_family() if lang == "zh" else LATIN_FONT
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["font.sans-serif"] = [family, "DejaVu Sans"] if lang == "zh" else [LATIN_FONT]
    plt.rcParams["axes.unicode_minus"] = lang == "en"
    plt.rcParams["savefig.dpi"] = PRINT_DPI
    plt.rcParams["figure.dpi"] = 100
    return family


def use_cjk_font() -> str:
    """The Chinese font as default (figures of the stage notebooks)."""
    return use_font("zh")


def figure_texts(fig) -> list[str]:
    """Every visible, non-empty text drawn on a figure (titles, labels, ticks, legends, annotations)."""
    fig.canvas.draw()  # tick labels exist only once drawn
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def fit_print_width(fig) -> None:
    """Shrink a figure wider than the printed width to it, keeping its font sizes (so they print as set).

    The layout is redone: a figure laid out by tight_layout gets it again; constrained layout redoes itself.
    """
    w, h = fig.get_size_inches()
    if w <= PRINT_WIDTH_IN:
        return
    fig.set_size_inches(PRINT_WIDTH_IN, h * PRINT_WIDTH_IN / w)
    engine = fig.get_layout_engine()
    if engine is None or type(engine).__name__ in ("PlaceHolderLayoutEngine", "TightLayoutEngine"):
        fig.tight_layout()


def save_figure(fig, path: Path) -> Path:
    """Save at print resolution and printed width, creating the folder, with the figure's text as PNG metadata.

    Closes the figure.
    """
    fit_print_width(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Description": "\n".join(figure_texts(fig))} if path.suffix.lower() == ".png" else None
    fig.savefig(path, dpi=PRINT_DPI, bbox_inches="tight", metadata=meta)
    plt.close(fig)
    return path
