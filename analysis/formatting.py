"""DataFrames of strings → Markdown or LaTeX tables; numeric DataFrames → CSV.

Written here rather than with ``DataFrame.to_markdown`` / ``to_latex`` so the output
needs no optional dependency (tabulate, jinja2) and is stable across pandas versions.
"""

from __future__ import annotations

import math

import pandas as pd

LATEX_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("\\", r"\textbackslash{}"),
    ("&", r"\&"),
    ("%", r"\%"),
    ("$", r"\$"),
    ("#", r"\#"),
    ("_", r"\_"),
    ("{", r"\{"),
    ("}", r"\}"),
    ("~", r"\textasciitilde{}"),
    ("^", r"\textasciicircum{}"),
    ("±", r"$\pm$"),
    ("Δ", r"$\Delta$"),
    ("—", "---"),
    ("–", "--"),
    ("−", "$-$"),
)
"""Characters that LaTeX treats specially, and the Unicode symbols our tables use."""


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _alignment(table: pd.DataFrame, align: str | None) -> str:
    """Per-column alignment, ``"l"`` or ``"r"``: ``align`` if given, else the first two
    columns left and the others right."""
    if align is None:
        return "".join("l" if k < 2 else "r" for k in range(len(table.columns)))
    if len(align) != len(table.columns) or set(align) - {"l", "r"}:
        raise ValueError(f"align must give 'l' or 'r' for each of {len(table.columns)} columns, got {align!r}")
    return align


def to_markdown(table: pd.DataFrame, align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; ``|`` in cells is escaped.

    Args:
        table: cells as strings (or values printed with ``str``; NaN and None as empty).
        align: ``"l"``/``"r"`` per column (default: first two left, the rest right).
    """
    alignment = _alignment(table, align)
    columns = [str(column) for column in table.columns]
    rows = [[_cell(value).replace("|", r"\|") for value in row] for row in table.itertuples(index=False)]
    widths = [max([len(column), 3, *(len(row[k]) for row in rows)]) for k, column in enumerate(columns)]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if side == "l" else cell.rjust(width)
            for cell, width, side in zip(cells, widths, alignment, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        "-" * width if side == "l" else "-" * (width - 1) + ":"
        for width, side in zip(widths, alignment, strict=True)
    ]
    return "\n".join([line(columns), "| " + " | ".join(rule) + " |", *map(line, rows)]) + "\n"


def latex_escape(text: str) -> str:
    """``text`` with LaTeX special characters escaped (see :data:`LATEX_REPLACEMENTS`)."""
    out = []
    replacements = dict(LATEX_REPLACEMENTS)
    for character in text:
        out.append(replacements.get(character, character))
    return "".join(out)


def to_latex(
    table: pd.DataFrame, caption: str | None = None, label: str | None = None, align: str | None = None
) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``).

    Args:
        table: cells as strings (or values printed with ``str``; NaN and None as empty).
        caption: optional caption text (escaped).
        label: optional ``\\label`` key (not escaped).
        align: ``"l"``/``"r"`` per column (default: first two left, the rest right).
    """
    columns = [str(column) for column in table.columns]
    spec = _alignment(table, align)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(column) for column in columns) + r" \\",
        r"\midrule",
    ]
    for row in table.itertuples(index=False):
        lines.append(" & ".join(latex_escape(_cell(value)) for value in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(table: pd.DataFrame) -> str:
    """CSV text without the index; NaN is written as an empty field."""
    return table.to_csv(index=False)
