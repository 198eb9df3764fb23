"""Analysis of DartsReNet sweeps: result folders → tables, cell drawings and plots (paper §4).

The analysis reads the folders that the Ray Tune sweeps leave behind with pandas and
json only; it never imports Ray (docs/design.md, "Layers"). Modules:

* :mod:`analysis.results` — find experiments by their ``sweep.json`` marker, load trials
  and per-epoch histories into DataFrames.
* :mod:`analysis.tables` — the paper's Table 1 and the search summary, as DataFrames.
* :mod:`analysis.formatting` — DataFrames → Markdown, LaTeX or CSV text.
* :mod:`analysis.make_table` — command line: print or write the tables.
* :mod:`analysis.draw_cells` — genotypes → graphviz drawings in the style of the paper's Fig. 3–5.
* :mod:`analysis.plot_search` — α over search epochs and learning curves (matplotlib).
"""
