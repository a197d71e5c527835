"""``cnngraph export MODEL -o FILE.onnx``: the command line of :mod:`cnngraph.onnx`.

>>> import os, tempfile
>>> from cnngraph.cli import main
>>> main(["export", "lenet5", "-o", os.path.join(tempfile.mkdtemp(), "lenet5.onnx")])  # doctest: +ELLIPSIS
wrote .../lenet5.onnx: 10 ONNX nodes, 8 initializers, opset 17, batch N
0
"""
from __future__ import annotations

from cnngraph.cli import add_model_args, load_model, parse_input, parse_options
from cnngraph.ir.errors import CnnGraphError


def cmd_export(args):
    from cnngraph.compiler import weights as cg_weights
    from cnngraph.io.files import check_output
    from cnngraph.ir.sizes import parse_size
    from cnngraph.onnx.exporter import export

    check_output(args.output, (".onnx",))
    if not 13 <= args.opset <= 21:
        raise CnnGraphError(f"--opset {args.opset}: cnngraph exports opsets 13 to 21")
    g = load_model(args.model, parse_input(args.input), parse_options(args.option))
    if args.weights:
        ws = cg_weights.load(args.weights, g)
    elif "weights" in g.graph:  # an imported ONNX model keeps its own weights
        ws = g.graph["weights"]
    else:
        ws = cg_weights.init(g, seed=args.seed)
    batch = parse_size(args.batch, "--batch")
    if not isinstance(batch, int) and not batch.is_Symbol:
        raise CnnGraphError(f"--batch {args.batch}: an ONNX batch is a number or a name (dim_param)")
    batch = batch if isinstance(batch, int) else batch.name
    m = export(g, ws, args.output, batch=batch, opset=args.opset)
    print(f"wrote {args.output}: {len(m.graph.node)} ONNX nodes, {len(m.graph.initializer)} initializers, "
          f"opset {args.opset}, batch {batch}")
    return 0


def add_export(p):
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="output FILE.onnx")
    p.add_argument("--weights", help=".npz or .safetensors with torchvision state_dict names")
    p.add_argument("--seed", type=int, default=0, help="seed of the He initialisation when no weights are given")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13 to 21 (default 17)")
    p.add_argument("--batch", default="N", help="batch dimension: a name (dim_param, default N) or a number")
    p.set_defaults(func=cmd_export)
