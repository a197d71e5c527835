"""``cnngraph export MODEL -o FILE.onnx``: the command line of :mod:`cnngraph.onnx`."""
from __future__ import annotations

from cnngraph.cli import add_model_args, load_model, parse_input, parse_options


def cmd_export(args):
    from cnngraph.compiler import weights as cg_weights
    from cnngraph.onnx.exporter import export

    g = load_model(args.model, parse_input(args.input), parse_options(args.option))
    if args.weights:
        ws = cg_weights.load(args.weights, g)
    elif "weights" in g.graph:  # an imported ONNX model keeps its own weights
        ws = g.graph["weights"]
    else:
        ws = cg_weights.init(g, seed=args.seed)
    batch = int(args.batch) if args.batch.isdigit() else args.batch
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
