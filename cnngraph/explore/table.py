"""A results table without pandas: named NumPy columns, saved as CSV, JSON or Parquet.

>>> import numpy as np
>>> t = Table({"a": np.array([0.5, 1.0]), "macs": np.array([10, 40])}, {"model": "m"})
>>> t.sort("macs", descending=True)["a"].tolist()
[1.0, 0.5]
>>> print(t.to_csv(), end="")
a,macs
0.5,10
1.0,40
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from cnngraph.ir.errors import CnnGraphError


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


class Table:
    """Columns of equal length (``table["macs"]`` is an array) plus ``meta`` (how it was made)."""

    def __init__(self, columns: dict, meta: dict | None = None):
        self.columns = {k: np.asarray(v) for k, v in columns.items()}
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise CnnGraphError(f"table columns differ in length: {sorted(lengths)}")
        self.meta = dict(meta or {})

    @property
    def names(self) -> list:
        return list(self.columns)

    def __len__(self):
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name):
        return self.columns[name]

    def __contains__(self, name):
        return name in self.columns

    def row(self, i: int) -> dict:
        return {k: _plain(v[i]) for k, v in self.columns.items()}

    def rows(self):
        return (self.row(i) for i in range(len(self)))

    def take(self, index) -> "Table":
        """Rows picked by an index array or a boolean mask."""
        return Table({k: v[index] for k, v in self.columns.items()}, self.meta)

    def sort(self, by: str, descending: bool = False) -> "Table":
        order = np.argsort(self.columns[by], kind="stable")
        return self.take(order[::-1] if descending else order)

    def with_columns(self, **cols) -> "Table":
        return Table({**self.columns, **cols}, self.meta)

    def equals(self, other: "Table") -> bool:
        """Same columns, same values in the same order (meta is not compared)."""
        return self.names == other.names and all(np.array_equal(self[k], other[k]) for k in self.names)

    # ---------------------------------------------------------------- output
    def to_csv(self, path=None) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.names)
        cols = [v.tolist() for v in self.columns.values()]
        w.writerows(zip(*cols))
        return _write(buf.getvalue(), path)

    def to_json(self, path=None) -> str:
        cols = [v.tolist() for v in self.columns.values()]
        rows = [dict(zip(self.names, r)) for r in zip(*cols)]
        return _write(json.dumps(dict(meta=self.meta, rows=rows), ensure_ascii=False), path)

    def to_parquet(self, path) -> None:
        pa, pq = require_pyarrow()
        t = pa.table({k: v for k, v in self.columns.items()})
        t = t.replace_schema_metadata({"cnngraph": json.dumps(self.meta, ensure_ascii=False)})
        from cnngraph.io.files import atomic_path

        with atomic_path(path) as tmp:
            pq.write_table(t, tmp)

    def save(self, path) -> str:
        """Write to ``path`` in the format its extension says (.csv, .json, .parquet)."""
        ext = Path(path).suffix.lower()
        if ext == ".csv":
            self.to_csv(path)
        elif ext == ".json":
            self.to_json(path)
        elif ext in (".parquet", ".pq"):
            self.to_parquet(path)
        else:
            raise CnnGraphError(f"--out {path}: unknown format {ext or '(none)'}; use .csv, .json or .parquet")
        return str(path)

    def to_text(self, n: int = 20) -> str:
        """The first ``n`` rows aligned, integers with thousands separators."""
        head = self.take(slice(0, n))

        def fmt(v):
            v = _plain(v)
            if isinstance(v, float):
                return f"{v:.4g}"
            if isinstance(v, int):
                return f"{v:,}"
            return str(v)

        cells = [self.names] + [[fmt(v) for v in r.values()] for r in head.rows()]
        widths = [max(len(c[i]) for c in cells) for i in range(len(self.names))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
        if len(self) > n:
            lines.append(f"... {len(self) - n:,} more rows")
        return "\n".join(lines) + "\n"

    def __repr__(self):
        return f"<Table {len(self):,} rows × {len(self.names)} columns: {', '.join(self.names)}>"


def require_pyarrow():
    """``(pyarrow, pyarrow.parquet)``, or a one-line error saying Parquet needs it."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise CnnGraphError("Parquet output needs pyarrow, which is not installed (pip install pyarrow); "
                            "CSV and JSON need nothing") from None
    return pa, pq


def _write(text: str, path) -> str:
    if path is not None:
        from cnngraph.io.files import write_text

        write_text(path, text)  # whole or not at all
    return text


def read_json(path) -> Table:
    d = json.loads(Path(path).read_text())
    names = list(d["rows"][0]) if d["rows"] else []
    return Table({k: np.array([r[k] for r in d["rows"]]) for k in names}, d.get("meta"))
