"""``pareto.svg``: accuracy damage against each budget, with the budgets and the tolerance drawn.

One panel per budget the profile sets. Each dot is a candidate at its
measured figure (x, in the budget's unit) and its damage (y, the share of
the accuracy tolerance used); the dashed lines are the budget and the
tolerance, so what fits is the lower-left box. The front of candidates no
other beats on both axes is joined by a line, and the one that ships is a
star. SVG, so it is sharp on a phone and small in a CI artifact store.
"""

from __future__ import annotations

from pathlib import Path

from edgepipe.fit.choose import damage_of, pareto, scored
from edgepipe.fit.trial import TrialRecord

#: Damage is drawn up to this share of the tolerance; candidates beyond it sit on the top edge.
Y_CAP = 5.0
SCALES = {"bytes": (1024.0, "KiB"), "s": (1e-3, "ms"), "µJ": (1.0, "µJ")}


def write_pareto_svg(path: Path, records: list[TrialRecord], shipped: int | None, title: str) -> Path | None:
    """Draw the panels into ``path``; None when no candidate has a budget to draw."""
    rows = scored(records)
    budgets = [b.name for b in rows[0].score.budgets] if rows else []
    if not budgets:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(budgets), 3.8), layout="constrained")
    for i, name in enumerate(budgets):
        _panel(fig.add_subplot(1, len(budgets), i + 1), rows, name, shipped)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, format="svg", metadata={"Date": None})
    return path


def _panel(ax, rows: list[TrialRecord], name: str, shipped: int | None) -> None:
    front = set(pareto(rows, name))
    unit = next(b.unit for b in rows[0].score.budgets if b.name == name)
    scale, shown = SCALES.get(unit, (1.0, unit))
    budget = next(b.budget for b in rows[0].score.budgets if b.name == name) / scale

    def xy(r: TrialRecord) -> tuple[float, float]:
        b = next((b for b in r.score.budgets if b.name == name), None)
        x = b.measured / scale if b is not None else float("nan")
        return x, min(Y_CAP, damage_of(r.score))

    for feasible, colour in ((False, "#b0b0b0"), (True, "#2a9d4b")):
        pts = [xy(r) for r in rows if r.score.feasible == feasible]
        if pts:
            ax.scatter(*zip(*pts), s=18, c=colour, label="passes every check" if feasible else "misses a check")
    line = sorted(xy(r) for r in rows if r.number in front)
    ax.plot(*zip(*line), color="#1f5fa8", lw=1, label="Pareto front")
    if shipped is not None:
        star = [xy(r) for r in rows if r.number == shipped]
        ax.scatter(*zip(*star), s=140, marker="*", c="#e07b00", zorder=5, label="ships")
    ax.axvline(budget, ls="--", color="#c0392b", lw=1)
    ax.axhline(1.0, ls="--", color="#c0392b", lw=1)
    ax.set_xlabel(f"{name} ({shown}); budget {budget:g} {shown}")
    ax.set_ylabel("accuracy damage (1 = the tolerance)")
    ax.set_ylim(bottom=0, top=min(Y_CAP, max(1.2, max(y for _, y in map(xy, rows)) * 1.1)))
    ax.legend(fontsize=7, loc="upper right")
