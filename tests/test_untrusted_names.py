"""Names read from result files never make a path leave its folder (dartsrenet/safe_paths.py).

A hostile or mistaken ``selected_genotypes.json`` (variant key ``../../owned``), a trial's
``params.json`` (variant ``../x``) or an experiment name (``--name ../x``) is refused with
one line, before anything is written; a link in the output folder that points elsewhere
is refused too. ``draw_cells.py`` without ``--genotypes`` draws only a search selection
found inside ``--results``, says which, and exits non-zero when there is none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analysis import draw_cells, plot_search
from dartsrenet import results
from dartsrenet.safe_paths import UnsafePathError, checked_name, path_inside
from tests.fixtures_results import SEARCH_EXPECTED_SELECTION, make_search_experiment


@pytest.mark.parametrize("name", ["..", ".", "", "../../owned", "a/b", "/etc/passwd", "x\0y", 3, None])
def test_names_that_are_not_one_plain_component_are_refused(name):
    with pytest.raises(UnsafePathError) as error:
        checked_name(name, "variant key")
    assert "\n" not in str(error.value) and str(error.value).startswith("variant key ")


@pytest.mark.parametrize("name", ["vanilla", "sigmoid_weighting", "..x", "a.b", "search_pets_demo", "ü ñ"])
def test_plain_names_pass(name, tmp_path):
    assert checked_name(name, "name") == name
    assert path_inside(tmp_path, name, "name", ".png") == tmp_path / f"{name}.png"


def test_a_link_in_the_folder_that_leads_outside_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "victim.png").write_text("keep")
    (tmp_path / "out" / "vanilla.png").symlink_to(tmp_path / "victim.png")
    with pytest.raises(UnsafePathError, match="leads outside"):
        path_inside(tmp_path / "out", "vanilla", "cell name", ".png")


def hostile_selection(root: Path, key: str) -> Path:
    """A search experiment whose ``selected_genotypes.json`` has variant key ``key``."""
    experiment = make_search_experiment(root)
    selection = experiment / results.SELECTION_FILE
    document = json.loads(selection.read_text())
    document["variants"][key] = document["variants"].pop("vanilla")
    selection.write_text(json.dumps(document))
    return experiment


@pytest.mark.parametrize("default", [True, False], ids=["latest-under-results", "given-selection"])
def test_draw_cells_refuses_a_variant_key_leading_outside_out(tmp_path, monkeypatch, capsys, default):
    monkeypatch.chdir(tmp_path)
    owned = tmp_path / "owned.png"
    owned.write_text("an existing file")
    experiment = hostile_selection(tmp_path / "results", "../../owned")
    out = tmp_path / "figures" / "cells"
    argv = ["--results", str(tmp_path / "results")] if default else ["--genotypes", str(experiment)]
    assert draw_cells.main([*argv, "--out", str(out)]) == draw_cells.EXIT_USAGE
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "'../../owned'" in line and "variant key" in line
    assert owned.read_text() == "an existing file"
    assert not out.exists()  # nothing drawn, not even the variants with plain names


def test_draw_cells_refuses_a_link_in_out_that_leads_outside(tmp_path, capsys):
    out = tmp_path / "cells"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    for suffix in (".png", ".dot"):  # rendered with dot, or DOT sources without it
        (out / f"vanilla{suffix}").symlink_to(victim)
    assert draw_cells.main(["--genotypes", "vanilla", "--out", str(out)]) == draw_cells.EXIT_USAGE
    assert "leads outside" in capsys.readouterr().err
    assert victim.read_text() == "keep"


def test_draw_cells_without_a_selection_says_so_and_draws_nothing(tmp_path, capsys):
    out = tmp_path / "cells"
    (tmp_path / "results").mkdir()
    assert draw_cells.main(["--results", str(tmp_path / "results"), "--out", str(out)]) == draw_cells.EXIT_NO_DRAWINGS
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no search experiment under ") and "--genotypes paper" in err
    assert "\n" not in err and not out.exists()

    experiment = make_search_experiment(tmp_path / "results")
    (experiment / results.SELECTION_FILE).unlink()  # the search is still running
    assert draw_cells.main(["--results", str(tmp_path / "results"), "--out", str(out)]) == draw_cells.EXIT_NO_DRAWINGS
    err = capsys.readouterr().err.strip()
    assert f"{experiment.name}, has no {results.SELECTION_FILE} yet" in err and not out.exists()


def test_draw_cells_says_which_selection_it_draws(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot: DOT sources, enough here
    experiment = make_search_experiment(tmp_path / "results")
    out = tmp_path / "cells"
    status = draw_cells.main(["--results", str(tmp_path / "results"), "--out", str(out)])
    assert status == draw_cells.EXIT_SOURCES_ONLY
    err = capsys.readouterr().err
    assert f"from {experiment / results.SELECTION_FILE} (the latest search experiment's selection" in err
    assert sorted(path.stem for path in out.iterdir()) == sorted(SEARCH_EXPECTED_SELECTION)


def test_draw_cells_never_takes_a_selection_from_outside_results(tmp_path, capsys):
    elsewhere = make_search_experiment(tmp_path / "elsewhere")
    (tmp_path / "results").mkdir()
    os.symlink(elsewhere, tmp_path / "results" / elsewhere.name)
    out = tmp_path / "cells"
    assert draw_cells.main(["--results", str(tmp_path / "results"), "--out", str(out)]) == draw_cells.EXIT_NO_DRAWINGS
    assert "lies outside" in capsys.readouterr().err and not out.exists()


def test_plot_search_refuses_a_variant_leading_outside_out(tmp_path, capsys):
    experiment = make_search_experiment(tmp_path / "results")
    for params in experiment.glob("*/params.json"):
        config = json.loads(params.read_text())
        if config["variant"] == "vanilla":
            params.write_text(json.dumps({**config, "variant": "../../../owned"}))
    out = tmp_path / "figures" / "search"
    assert plot_search.main(["--search", str(experiment), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: variant") and "'alpha_../../../owned'" in line
    assert not out.exists() and not (tmp_path / "owned.png").exists()


@pytest.mark.parametrize("name", ["../elsewhere", "a/b", ".."])
def test_sweep_experiment_names_are_one_folder_of_the_storage(tmp_path, capsys, name):
    pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")
    from sweeps import search_all_variants

    status = search_all_variants.main(
        ["--preset", "demo", "--storage", str(tmp_path / "results"), "--name", name, "--address", "nowhere:1"]
    )
    assert status == 2  # refused while planning: --address is never used
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: experiment name {name!r} is not a plain name") and "--storage" in err
    assert not (tmp_path / "results").exists()
