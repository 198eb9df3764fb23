"""Malformed preset files and output folders that cannot be written: one line, never a traceback.

Preset files (dartsrenet/config.py, ``load_preset``) are refused with one line naming the
file and what is wrong — by the library's command line and by a sweep while it plans.
``make_table.py --out`` into a read-only folder or onto a full disk is one line naming
the folder: checked for real, on a read-only bind mount and a full tmpfs in a private
mount namespace (``unshare -m``; the tests run as root in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dartsrenet import cli
from dartsrenet.config import PRESETS, load_preset, preset_shape_problem
from tests.fixtures_results import make_eval_experiment, make_search_experiment

ROOT = Path(__file__).resolve().parents[1]

MALFORMED_PRESETS = {
    "list-section.json": ('{"search": [1, 2]}', "'search' must be an object of config fields, got list"),
    "dataset-not-object.json": ('{"datasets": {"digits": 5}}', "'datasets.digits' must be an object with keys search, train"),
    "datasets-list.json": ('{"datasets": []}', "'datasets' must be an object of dataset names, got list"),
    "unknown-field.json": ('{"train": {"colour": 1}}', "'train': unknown TrainConfig field(s) colour; valid fields: "),
    "dataset-field.json": (
        '{"datasets": {"svhn": {"search": {"colour": 1}}}}', "'datasets.svhn.search': unknown SearchConfig field(s) colour"
    ),
    "array.json": ("[1]", "a preset file is a JSON object with keys search, train, datasets"),
    "not-json.json": ("search:\n  epochs: 2\n", "malformed preset JSON (preset files are JSON)"),
    "cut.json": ('{"search": {"epochs": 2', "malformed preset JSON"),
}


@pytest.mark.parametrize("name", list(MALFORMED_PRESETS))
def test_a_malformed_preset_file_is_one_line(tmp_path, name):
    text, message = MALFORMED_PRESETS[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_preset(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_preset_file_that_is_not_utf8_or_not_regular_is_one_line(tmp_path):
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match=f"^{binary}: a preset file is UTF-8 JSON text; byte 0 is not UTF-8$"):
        load_preset(binary)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    with pytest.raises(ValueError, match=f"^{fifo}: not a regular file"):
        load_preset(fifo)


@pytest.mark.parametrize("name", list(PRESETS))
def test_the_built_in_presets_have_the_preset_shape(name):
    assert preset_shape_problem(PRESETS[name]) is None


def test_the_command_line_and_a_sweep_refuse_a_malformed_preset_with_one_line(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"search": [1, 2]}')
    assert cli.main(["search", "--preset", str(path), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {path}: 'search' must be an object of config fields, got list"
    assert not (tmp_path / "run").exists()
    pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")
    from sweeps import search_all_variants

    status = search_all_variants.main(["--preset", str(path), "--storage", str(tmp_path / "results")])
    assert status == 2  # while planning, before Ray starts
    assert capsys.readouterr().err.strip() == (
        f"error: --preset {path}: {path}: 'search' must be an object of config fields, got list"
    )
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------- output folders


def can_mount() -> bool:
    """Whether this process may make a private mount namespace and mount in it (root, or
    a container with CAP_SYS_ADMIN)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True, timeout=30)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    not os.environ.get("CI") and not can_mount(),
    reason="needs a private mount namespace (unshare -m, as root); CI runs it and fails without one",
)


@pytest.fixture(scope="module")
def results_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    make_eval_experiment(root)
    make_search_experiment(root)
    return root


@needs_mounts
@pytest.mark.parametrize(
    ("mount", "reason"),
    [
        ("mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} {folder}", "Read-only file system"),
        ("mount -t tmpfs -o size=4k tmpfs {folder} && (head -c 65536 /dev/zero > {folder}/filler 2>/dev/null || true)",
         "No space left on device"),
    ],
    ids=["read-only", "disk-full"],
)
def test_make_table_out_to_a_folder_it_cannot_write_is_one_line(results_root, tmp_path, mount, reason):
    folder = tmp_path / "tables"
    folder.mkdir()
    out = folder / "table1.md"
    script = f"{mount.format(folder=folder)} && exec \"$0\" analysis/make_table.py --results {results_root} --out {out}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    completed = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, sys.executable], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert completed.returncode == 2, completed.stderr
    assert "Table 1" in completed.stdout  # the tables are printed all the same
    errors = [line for line in completed.stderr.splitlines() if not line.startswith("note:")]
    assert errors == [
        f"error: cannot write {out} into the folder {folder}: {reason}; the tables are printed above, "
        "choose another --out"
    ]
    assert not out.exists()  # the mount is gone with the namespace; nothing was written beneath it
