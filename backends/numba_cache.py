"""Where Numba keeps compiled kernels, and what happens when an entry is damaged.

Imported before Numba (``backends/numba_kernels.py`` does so first): kernels are cached in
the user's cache folder, ``$NUMBA_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/cnngraph/numba``
or ``~/.cache/cnngraph/numba``, never in the installed source tree (which may be read-only
or shared). A truncated or corrupt cache entry (a full disk, a killed process) is discarded
with a warning and the kernel compiled again, instead of failing every later run.

>>> import os
>>> cache_dir().endswith(os.path.join("cnngraph", "numba")) or "NUMBA_CACHE_DIR" in os.environ
True
"""
from __future__ import annotations

import os
import warnings


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/cnngraph/numba``, or ``~/.cache/cnngraph/numba``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cnngraph", "numba")


class CacheRepairWarning(UserWarning):
    """A damaged Numba cache entry was removed; its kernel is compiled again."""


def _discard(path: str, error: Exception):
    try:
        os.unlink(path)
    except OSError:
        pass
    warnings.warn(f"discarded a damaged Numba cache entry {path} ({type(error).__name__}); compiling again",
                  CacheRepairWarning, stacklevel=2)


def _install_repair():
    """Make a damaged index or data file a cache miss: numba's reader raises on it."""
    from numba.core import caching

    cls = caching.IndexDataCacheFile
    if getattr(cls, "_cnngraph_repair", False):
        return
    load_index, load_data = cls._load_index, cls._load_data

    def _load_index(self):
        try:
            return load_index(self)
        except Exception as e:  # truncated pickle, wrong tuple, bad bytes: all mean "no usable index"
            _discard(self._index_path, e)
            return {}

    def _load_data(self, name):
        try:
            return load_data(self, name)
        except OSError:
            raise  # numba treats a missing data file as a miss itself
        except Exception as e:
            _discard(self._data_path(name), e)
            return None

    cls._load_index, cls._load_data, cls._cnngraph_repair = _load_index, _load_data, True


if "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = cache_dir()
    try:  # numba already imported by the caller: its config must read the variable again
        import sys

        if "numba" in sys.modules:
            from numba.core import config

            config.reload_config()
    except Exception:  # pragma: no cover - an old or unusual numba: the default location stays
        pass
_install_repair()
