"""Ray Tune entry points for dartsrenet (docs/design.md, "Sweeps").

The scripts in this folder adapt the library's plain runs
(:func:`dartsrenet.search.run_search`, :func:`dartsrenet.train.run_train`) to Ray Tune:
one trial per (variant, seed) of a cell search, per (model, dataset, seed) of an
evaluation, or per sample of a hyperparameter search. What they share lives in modules
named for what they do: :mod:`sweeps.options` (the command line), :mod:`sweeps.ray_setup`
and :mod:`sweeps.resources` (Ray and what trials need), :mod:`sweeps.trainable` (the
trial), :mod:`sweeps.experiment` (experiment folders, running and summarising),
:mod:`sweeps.failure_drill`, and :mod:`sweeps.ray_compat` (the only module that touches
Ray's private APIs). The library itself never imports Ray.

* ``search_all_variants.py`` — cell search sweep; writes ``selected_genotypes.json``.
* ``evaluate_genotypes.py`` — Table 1 sweep: derived cells + GRU + LSTM baselines.
* ``tune_hparams.py`` — Optuna + ASHA over training hyperparameters; writes a preset file.
* ``demo.py`` — ``make demo``: both sweeps on ``digits`` on CPU, then the analysis.
"""
