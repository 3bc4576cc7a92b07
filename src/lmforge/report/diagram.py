"""Figure 4 of the course for one model: its architecture drawn from its own modules.

The boxes are the model's top-level children in the order it runs them, the repeated block
opened up into its own children, each with its class and parameter count — read from the
built `nn.Module`, so the picture cannot drift from the code.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch
from torch import nn


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _label(name: str, module: nn.Module) -> str:
    n = _params(module)
    count = f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)
    return f"{name}: {type(module).__name__}" + (f"  ({count})" if n else "")


def _shown(module: nn.Module) -> bool:
    """Identity and inactive dropout do nothing at inference; leaving them out keeps the figure readable."""
    return not isinstance(module, nn.Identity) and not (isinstance(module, nn.Dropout) and module.p == 0)


def layout(model: nn.Module) -> list[tuple[str, list[str], int]]:
    """(label, inner labels, repeats) per top-level step, input first. A ModuleList of blocks is one
    step whose inner labels are its first block's children. A module whose weights another one
    already holds (a head tied to the embedding) says so instead of counting them twice."""
    steps: list[tuple[str, list[str], int]] = []
    seen: dict[int, str] = {}
    for name, child in model.named_children():
        owner = {seen.get(id(p)) for p in child.parameters()}
        for p in child.parameters():
            seen.setdefault(id(p), name)
        if owner and None not in owner:
            steps.append((f"{name}: {type(child).__name__}  (tied to {', '.join(sorted(owner))})", [], 1))
        elif isinstance(child, nn.ModuleList) and len(child):
            first = child[0]
            inner = [_label(n, m) for n, m in first.named_children() if _shown(m)] or [_label(f"{name}.0", first)]
            steps.append((_label(name, child), inner, len(child)))
        elif _shown(child):
            steps.append((_label(name, child), [], 1))
    return steps


def architecture_figure(model: nn.Module, out: Path, title: str) -> Path:
    """Draw the model bottom-up (input at the bottom, next-token logits at the top), as papers do."""
    steps = layout(model)
    heights = [0.7 if not inner else 0.55 * len(inner) + 0.9 for _, inner, _ in steps]
    total = sum(heights) + 0.5 * (len(steps) - 1) + 1.6
    fig, ax = plt.subplots(figsize=(5.2, max(3.0, 0.55 * total)), dpi=110)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, total)
    ax.axis("off")
    y = 0.8
    ax.text(5, 0.15, "token ids", ha="center", va="center", fontsize=8, color="#555")
    for (label, inner, repeats), h in zip(steps, heights):
        face = "#eef3fb" if inner else "#f7f7f7"
        ax.add_patch(FancyBboxPatch((1, y), 8, h, boxstyle="round,pad=0.05", fc=face, ec="#4c72b0" if inner else "#888"))
        if inner:
            ax.text(1.2, y + h - 0.3, label + (f"   × {repeats}" if repeats > 1 else ""), fontsize=8, va="center",
                    weight="bold")
            for i, text in enumerate(inner):
                iy = y + 0.25 + 0.55 * i
                ax.add_patch(FancyBboxPatch((1.6, iy), 6.8, 0.4, boxstyle="round,pad=0.03", fc="white", ec="#aaa"))
                ax.text(5, iy + 0.2, text, ha="center", va="center", fontsize=7)
        else:
            ax.text(5, y + h / 2, label, ha="center", va="center", fontsize=8)
        ax.annotate("", (5, y), (5, y - 0.4), arrowprops={"arrowstyle": "->", "color": "#555"})
        y += h + 0.5
    ax.text(5, y - 0.1, "next-token logits", ha="center", va="center", fontsize=8, color="#555")
    ax.set_title(f"{title} — {_params(model) / 1e6:.2f}M parameters", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
