"""Fonts for figures: matplotlib's own DejaVu Sans for English, and for Chinese the Noto Sans CJK SC
font that ships inside the `mplfonts` package (installed with lmforge; nothing is downloaded when
a figure is drawn). DejaVu has no CJK glyphs, so without this every Chinese label is a box."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"


def cjk_font_path() -> Path | None:
    """The CJK font file inside the installed mplfonts package (found without importing the
    package, whose own code is not needed), or None when it is not installed."""
    spec = importlib.util.find_spec("mplfonts")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "fonts" / CJK_FONT_FILE
        if path.is_file():
            return path
    return None


@cache
def _register_cjk() -> str | None:
    from matplotlib import font_manager

    path = cjk_font_path()
    if path is None:
        return None
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def setup_matplotlib(lang: str = "en") -> str:
    """Make matplotlib draw `lang` text; returns the font family it will use first. Chinese needs
    the CJK font: without it the call fails rather than draw boxes."""
    from lmforge.errors import LmforgeError

    if lang == "zh":
        name = _register_cjk()
        if name is None:
            raise LmforgeError("report.lang=zh needs the CJK font of the mplfonts package, which is not installed",
                               "pip install mplfonts (it is in lmforge's dependencies: reinstall lmforge)")
        matplotlib.rcParams["font.family"] = "sans-serif"
        matplotlib.rcParams["font.sans-serif"] = [name, "DejaVu Sans"]
        matplotlib.rcParams["axes.unicode_minus"] = False  # the CJK font's minus sign is the ASCII one
        return name
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["font.sans-serif"] = ["DejaVu Sans"]
    matplotlib.rcParams["axes.unicode_minus"] = True
    return "DejaVu Sans"


def missing_glyphs(text: str, font_path: Path) -> list[str]:
    """Characters of `text` the font at `font_path` has no glyph for (spaces aside)."""
    from matplotlib.ft2font import FT2Font

    font = FT2Font(str(font_path))
    charmap = font.get_charmap()
    return sorted({ch for ch in text if not ch.isspace() and ord(ch) not in charmap})


def cjk_font_face(text: str) -> str:
    """A CSS @font-face holding the CJK font cut down to the characters of `text` (fontTools'
    subsetter; a few kB instead of 16 MB), so a Chinese page renders its text in any browser,
    offline, with no CJK font installed."""
    import base64
    import io

    from fontTools import subset

    path = cjk_font_path()
    if path is None:
        return ""
    opts = subset.Options()
    font = subset.load_font(str(path), opts)
    cutter = subset.Subsetter(opts)
    cutter.populate(text="".join(sorted(set(text))))
    cutter.subset(font)
    buf = io.BytesIO()
    subset.save_font(font, buf, opts)
    data = base64.b64encode(buf.getvalue()).decode()
    return (f'@font-face{{font-family:"lmforge CJK";src:url(data:font/otf;base64,{data}) format("opentype")}}'
            'body{font-family:"lmforge CJK",system-ui,sans-serif}')  # first: Chromium draws some CJK as boxes when it comes second
