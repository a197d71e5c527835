"""Every code block and command of README.md and docs/*.md runs, and the values the text states hold.

The rules a page follows (also stated in README's "Development" section):

- ```python blocks run in page order in one namespace per page, in a fresh working directory
  per page. A bare expression whose trailing comment begins like a value (a digit, bracket,
  quote, minus sign, True/False/None, or the value's own leading name, as in
  ``r.total.macs   # 83410944*h*w + 2048000``) is checked: the comment must begin with the
  value as ``str()`` prints it. A comment beginning with another word is prose.
- ```sh / ```console / ```shell blocks: every line is one command (``$ `` is stripped in
  console blocks, whose other lines are output). ``cnngraph ...`` runs in-process and must
  succeed; each word of its trailing comment that holds a digit (``17HWC²``, ``4692426``) must
  appear in its output (spaces, ``·`` and ``*`` ignored). Any other command fails the test
  unless the block is marked.
- Untagged blocks and ```text blocks are output shown to the reader; they are not run.
- A marker is an HTML comment on the line right before the fence:
  ``<!-- docs-test: skip REASON -->`` (never run: make targets, GPU, files the reader brings),
  ``<!-- docs-test: slow -->`` (run only with CNNGRAPH_FULL_TESTS=1),
  ``<!-- docs-test: file NAME.py -->`` (a python block also written to NAME.py, so later
  commands can use ``NAME.py:function``), ``<!-- docs-test: signatures -->`` (a text block of
  DSL signatures compared with the code).
"""
from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FULL = os.environ.get("CNNGRAPH_FULL_TESTS") == "1"
TIMES = os.environ.get("DOCS_TEST_TIMES") == "1"  # print each block's and command's time (pytest -s)
MARKER = re.compile(r"<!--\s*docs-test:\s*(\w+)\s*(.*?)\s*-->")
SHELL = ("sh", "bash", "shell", "console")


@dataclass
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the first code line
    marker: str = ""
    arg: str = ""


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page with the marker right before each."""
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^```\s*(\S*)", lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        prev = lines[i - 1] if i else ""
        mk = MARKER.search(prev)
        out.append(Block(m.group(1).lower(), "\n".join(lines[i + 1:j]), i + 2,
                         mk.group(1) if mk else "", mk.group(2) if mk else ""))
        i = j + 1
    return out


def _norm(s: str) -> str:
    return " ".join(str(s).split())


def _comments(code: str) -> dict:
    """{line number: comment text without '#'} of a python block."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


VALUE_START = re.compile(r"^([-\d(\[{'\"]|True\b|False\b|None\b)")
IDENT = re.compile(r"^[A-Za-z_]\w*")


def states_value(comment: str, value) -> bool:
    """A comment states a value when it begins like one (a digit, bracket, quote, minus sign,
    True/False/None) or with the same identifier as the value (``C*(...)``); otherwise it is prose."""
    if VALUE_START.match(comment):
        return True
    a, b = IDENT.match(comment), IDENT.match(_norm(value))
    return bool(a and b and a.group(0) == b.group(0))


def run_python(block: Block, ns: dict, where: str) -> None:
    tree = ast.parse(block.code)
    notes = _comments(block.code)
    for stmt in tree.body:
        line = block.line + stmt.lineno - 1
        if isinstance(stmt, ast.Expr):
            value = eval(compile(ast.Expression(stmt.value), f"{where}:{line}", "eval"), ns)
            stated = notes.get(stmt.end_lineno)
            if stated is not None and value is not None and states_value(stated, value):
                assert _norm(stated).startswith(_norm(value)), (
                    f"{where}:{line}: the text says {stated!r}, the code gives {value!r}")
        else:
            exec(compile(ast.Module([stmt], []), f"{where}:{line}", "exec"), ns)


def _digits_words(comment: str) -> list:
    words = [w.strip(",;:()[]'\"") for w in comment.split()]
    return [w for w in words if re.search(r"\d", w)]


def _squash(s: str) -> str:
    return re.sub(r"[\s·*,]", "", s).replace("−", "-").replace("–", "-")


def run_shell(block: Block, where: str) -> None:
    from cnngraph.cli import main

    for k, raw in enumerate(block.code.replace("\\\n", " ").splitlines()):
        line = raw.strip()
        if block.lang == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        command, _, comment = line.partition(" #")
        argv = shlex.split(command)
        at = f"{where}:{block.line + k}"
        assert argv[0] == "cnngraph", (
            f"{at}: {argv[0]!r} is not a cnngraph command; mark the block <!-- docs-test: skip REASON -->")
        out, err, t0 = io.StringIO(), io.StringIO(), time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv[1:])
            except SystemExit as e:  # argparse
                code = e.code
        text = out.getvalue() + err.getvalue()
        if TIMES:
            print(f"{time.perf_counter() - t0:6.1f} s  {at} {command.strip()}")
        assert code == 0, f"{at}: `{command.strip()}` failed ({code}) in {os.getcwd()}: {text[-500:]}"
        for word in _digits_words(comment):
            assert _squash(word) in _squash(text), f"{at}: the comment says {word!r}; the output has no such value"


def check_signatures(block: Block, where: str) -> None:
    import inspect

    import cnngraph.dsl as dsl

    def show(obj, name):
        parts = []
        for p in inspect.signature(obj).parameters.values():
            if name.startswith("Net.") and p.name == "self":
                continue
            s = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
            if p.default is not p.empty:
                s += "=" + repr(p.default)
            parts.append(s)
        return f"{name}({', '.join(parts)})"

    stated = {ln.split("(")[0]: ln.strip() for ln in block.code.splitlines() if ln.strip()}
    want = [n for n in dsl.__all__ if n != "Tensor"] + ["Net.input", "Net.output"]
    missing = [n for n in want if n not in stated]
    assert not missing, f"{where}: builders not documented: {missing}"
    for name, text in stated.items():
        obj = getattr(dsl.Net, name[4:]) if name.startswith("Net.") else getattr(dsl, name)
        assert show(obj, name) == text, f"{where}: documented {text!r}, the code says {show(obj, name)!r}"


OPTIONAL_TORCH = ("torch", "torchvision", "timm")


def _needs_missing_torch(code: str) -> bool:
    """Does the block import PyTorch, torchvision or timm (``import cnngraph, torchvision``
    too) where it is not installed?"""
    import importlib.util

    used = set(re.findall(r"^\s*from\s+(\w+)", code, re.M))
    for names in re.findall(r"^\s*import\s+([\w., ]+)", code, re.M):
        used |= {n.split(" as ")[0].strip().split(".")[0] for n in names.split(",")}
    return any(m in OPTIONAL_TORCH and importlib.util.find_spec(m) is None for m in used)


def _missing_torch(e: ModuleNotFoundError) -> bool:
    """Did a block fail only because PyTorch (or torchvision, timm) is not installed (a
    cnngraph module it imports needs it)?"""
    import importlib.util

    return (e.name or "").split(".")[0] in OPTIONAL_TORCH and importlib.util.find_spec(e.name.split(".")[0]) is None


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    ns: dict = {"__name__": "__docs__"}
    ran = 0
    for b in blocks(page):
        rel = str(page.relative_to(ROOT))
        where = f"{rel}:{b.line}"
        if b.marker == "skip":
            assert b.arg, f"{where}: say why the block is skipped: <!-- docs-test: skip REASON -->"
            continue
        if b.marker == "slow" and not FULL:
            continue
        if b.marker == "signatures":
            check_signatures(b, where)
        elif b.lang in ("python", "py"):
            if _needs_missing_torch(b.code):
                pytest.skip(f"{where} needs PyTorch (optional); the rest of {rel} is not run")
            if b.marker == "file":
                (tmp_path / b.arg).write_text(b.code + "\n")
            t0 = time.perf_counter()
            try:
                run_python(b, ns, rel)
            except ModuleNotFoundError as e:
                if _missing_torch(e):
                    pytest.skip(f"{where} needs PyTorch (optional: {e.name}); the rest of {rel} is not run")
                raise
            if TIMES:
                print(f"{time.perf_counter() - t0:6.1f} s  {where} python block")
        elif b.lang in SHELL:
            run_shell(b, rel)
        else:
            assert b.lang or not b.code.startswith("cnngraph "), f"{where}: commands go in a ```sh block"
            continue
        ran += 1
    assert ran or all(b.marker in ("skip", "slow") for b in blocks(page) if b.lang in ("python", *SHELL))


def test_markers_are_known():
    """A misspelt marker would silently run (or skip) a block."""
    for page in PAGES:
        for m in MARKER.finditer(page.read_text()):
            assert m.group(1) in ("skip", "slow", "file", "signatures"), f"{page.name}: unknown marker {m.group(0)}"
