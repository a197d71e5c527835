"""Numba's cache: in the user's cache folder, and a damaged entry is rebuilt, not fatal."""
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba")

KERNEL = textwrap.dedent("""
    import warnings
    from cnngraph.backends import numba_cache  # before numba, as the backend does
    from numba import njit
    import numba.core.config as config

    @njit(cache=True)
    def twice_plus_one(x):
        return 2 * x + 1

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        print(twice_plus_one(20), config.CACHE_DIR, [str(x.message) for x in w])
""")


def _run(tmp_path, env):
    r = subprocess.run([sys.executable, str(tmp_path / "kernel.py")], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_cache_in_user_folder_and_damaged_entries_rebuilt(tmp_path):
    (tmp_path / "kernel.py").write_text(KERNEL)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    out = _run(tmp_path, env)
    folder = tmp_path / "xdg" / "cnngraph" / "numba"
    assert out.startswith("41 ") and str(folder) in out
    entries = [p for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert {p.suffix for p in entries} == {".nbi", ".nbc"}
    assert not list(tmp_path.glob("__pycache__/*.nb*"))  # nothing beside the source
    for p in entries:  # a disk that filled up mid-write: every entry cut short
        p.write_bytes(p.read_bytes()[:7])
    out = _run(tmp_path, env)
    assert out.startswith("41 ") and "discarded a damaged Numba cache entry" in out
    out = _run(tmp_path, env)  # rebuilt: the next run loads it silently
    assert out.startswith("41 ") and "discarded" not in out
