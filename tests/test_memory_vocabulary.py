"""One memory vocabulary: every output that shows memory says what it counts (activations =
every layer output, the planned arena, weights), bytes vs elements, and prints binary units
as KiB / MiB through the one formatter (printer.fmt_bytes)."""
import json

import pytest

from cnngraph import analyze, zoo
from cnngraph.cli import main
from cnngraph.ir import printer

UNITS = "1 KiB = 2^10 B, 1 MiB = 2^20 B"


def test_fmt_bytes_is_binary_and_says_so():
    assert printer.fmt_bytes(2**20) == "1.0 MiB" and printer.fmt_bytes(1536) == "1.5 KiB"
    assert printer.fmt_bytes(10**6) == "976.6 KiB"  # 10^6 B is not 1 MB here: units are 2^10-based
    assert printer.memory_note("activations").endswith(UNITS)


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex", "json", "csv"])
def test_table_formats_name_the_quantity_and_units(fmt, capsys):
    main(["table", "lenet5", "--format", fmt])
    out = capsys.readouterr().out
    if fmt == "json":
        d = json.loads(out)
        assert d["units"]["memory_bytes"] == "bytes" and UNITS in d["memory"]
        assert d["total"]["memory_bytes"] == analyze(zoo.build("lenet5")).total.memory_bytes
        return
    assert "memory (KiB)" in out and "memory (KB)" not in out
    if fmt != "csv":  # a CSV holds the header only; the others say what is counted
        assert "every layer output written once" in out and UNITS in out.replace("\n", " ")


def test_table_kib_column_is_bytes_over_1024():
    # LeNet-5 (seed 003): conv1 writes 20×28×28 fp32 = 62,720 B = 61.25 KiB, printed 61 (≥ 10: half up)
    rep = analyze(zoo.build("lenet5"))
    csv_rows = [line.split(",") for line in rep.to("csv").splitlines()]
    col = csv_rows[0].index("memory (KiB)")
    conv1 = next(r for r in csv_rows if r[0] == "conv1")
    assert rep.row("conv1").memory_bytes == 20 * 28 * 28 * 4 == 62720
    assert conv1[col] == "61"


def test_plan_compare_and_formulas_use_the_same_words(capsys):
    main(["plan", "resnet18"])
    out = capsys.readouterr().out
    # ResNet-18's arena: 90112·h·w B at h = w = 7 = 4,415,488 B = 4.21 MiB
    assert "planned arena per sample: 4.2 MiB" in out and "MB" not in out.replace("MiB", "")
    total = analyze(zoo.build("resnet18")).total.memory_bytes
    assert f"table's activation memory: {total / 2**20:.1f} MiB" in out
    assert printer.memory_note("arena", "naive", "activations") in out

    main(["compare", "resnet18", "resnet34"])
    out = capsys.readouterr().out
    assert "memory (MiB)" in out and printer.memory_note("activations") in out
    assert f"{total / 2**20:.1f}" in out.splitlines()[1]

    main(["formula", "bottleneck"])
    out = capsys.readouterr().out
    assert "memory (elements)  16HWC" in out  # 4HWC in, 16HWC written: elements, not bytes
    assert printer.memory_note("elements") in out

    main(["formula", "resnet18"])
    out = capsys.readouterr().out
    assert "memory_bytes" in out and printer.memory_note("activations") in out
