"""Open the gallery's index.html in headless Chromium and check that every image rendered,
every diagram has hover texts (shape, params, MACs) and every model has its inline tables.

The page's own script marks each ``<img data-check>`` with ``data-loaded="yes"`` once the
browser has decoded it (``naturalWidth > 0``; a malformed SVG or a missing file gives "no")
and writes the count to ``<body data-images="N/M">``. This script dumps the DOM after the
page settled and reads those marks.

    python tests/browser_check.py [gallery/index.html] [--screenshot page.png]

Exit status 0 when every image rendered, 1 otherwise, 2 when no browser is installed
(``make browser-check`` installs Debian's ``chromium``).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--allow-file-access-from-files", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def run_browser(browser: str, url: str, extra, timeout: float = 300) -> str:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=30000", *extra, url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(browser).name} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.body = [], {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("img", "object") and "data-check" in a:
            self.images.append(a)
        elif tag == "body":
            self.body = a


def check(index, screenshot=None, browser=None) -> dict:
    """``{"images": [...], "loaded": n, "failed": [src...], "summary": "n/m"}`` for a gallery page."""
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium/Chrome found: `make browser-check` installs Debian's chromium")
    url = Path(index).resolve().as_uri()
    dom = run_browser(browser, url, ["--dump-dom"])
    parser = _Images()
    parser.feed(dom)
    failed = [a.get("src") for a in parser.images if a.get("data-loaded") != "yes"]
    if screenshot:
        run_browser(browser, url, [f"--screenshot={Path(screenshot).resolve()}", "--window-size=1400,2400"])
    return dict(images=parser.images, loaded=len(parser.images) - len(failed), failed=failed,
                summary=parser.body.get("data-images"), tooltips=int(parser.body.get("data-tooltips") or 0),
                tables=int(parser.body.get("data-tables") or 0),
                bare=[a.get("data") for a in parser.images if a.get("data-check") == "diagram"
                      and int(a.get("data-tooltips") or 0) == 0])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("index", nargs="?", default="gallery/index.html")
    p.add_argument("--screenshot", help="also save a screenshot of the top of the page (PNG)")
    args = p.parse_args(argv)
    try:
        r = check(args.index, args.screenshot)
    except FileNotFoundError as e:
        print(f"browser check: {e}", file=sys.stderr)
        return 2
    n = len(r["images"])
    if n == 0 or r["summary"] is None:
        print(f"browser check: the page's script did not run or found no images ({args.index})", file=sys.stderr)
        return 1
    for src in r["failed"]:
        print(f"not rendered: {src}")
    diagrams = sum(a.get("data-check") == "diagram" and a.get("data-loaded") == "yes" for a in r["images"])
    for src in r["bare"]:
        print(f"no hover texts: {src}")
    print(f"browser check: {r['loaded']}/{n} images rendered ({diagrams} diagrams, {r['tooltips']} hover texts), "
          f"{r['tables']} inline tables in {args.index}")
    return 0 if not r["failed"] and not r["bare"] and r["tables"] >= diagrams else 1


if __name__ == "__main__":
    sys.exit(main())
