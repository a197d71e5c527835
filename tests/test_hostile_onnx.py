"""Hostile and malformed ONNX files, built with onnx.helper (no PyTorch needed): refused with
one clear error naming the node, before anything large is allocated; files ONNX Runtime
refuses for breaking the spec are refused too (checked against ONNX Runtime when installed)."""
import tracemalloc

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_cases import conv_model as _conv_model, hand_model as _model  # noqa: E402

from cnngraph.ir.errors import CnnGraphError  # noqa: E402
from cnngraph.onnx import load  # noqa: E402


def test_shape_errors_name_the_node():
    w = np.ones((6, 3, 3, 3), np.float32)  # 3 input channels, the input has 4
    with pytest.raises(CnnGraphError, match=r"conv: weight input channels × groups must equal the input channels \(3 × 1 vs 4\)"):
        load(_conv_model(w))


@pytest.mark.parametrize("case", ["truncated", "not_onnx", "empty", "no_graph"])
def test_unreadable_files(tmp_path, case):
    data = _conv_model().SerializeToString()
    content = {"truncated": data[: len(data) // 2], "not_onnx": b"\x89PNG\r\n\x1a\n" + bytes(range(200)),
               "empty": b"", "no_graph": helper.make_model(helper.make_graph([], "g", [], [])).SerializeToString()[:2]}[case]
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    with pytest.raises(CnnGraphError):
        load(p)


def _tensor(name, dims, raw=b"", data_type=TensorProto.FLOAT, **fields):
    t = TensorProto()
    t.name, t.data_type = name, data_type
    t.dims.extend(dims)
    if raw:
        t.raw_data = raw
    for k, v in fields.items():
        getattr(t, k).extend(v)
    return t


def _with_weight(t):
    return _model([helper.make_node("Conv", ["x", t.name], ["y"], name="conv")], [t])


@pytest.mark.parametrize("case, message", [
    ("huge", "over 2147483648 elements"),
    ("huge_dim", "sizes must be 0 to"),
    ("negative", "sizes must be 0 to"),
    ("short_raw", "declares dims [6, 4, 3, 3] (216 × 4 bytes) but holds 8 bytes"),
    ("short_typed", "declares dims [6, 4, 3, 3] (216 values) but holds 3"),
    ("string", "data type 8"),
    ("external", "external file"),
])
def test_hostile_initializers(case, message):
    """Declared sizes are checked against the data before anything is allocated."""
    t = {"huge": _tensor("w", [2**20, 2**20, 3, 3], raw=b"\0" * 8),
         "huge_dim": _tensor("w", [2**40, 1, 1, 1], raw=b"\0" * 8),
         "negative": _tensor("w", [-6, 4, 3, 3], raw=b"\0" * 8),
         "short_raw": _tensor("w", [6, 4, 3, 3], raw=b"\0" * 8),
         "short_typed": _tensor("w", [6, 4, 3, 3], float_data=[1.0, 2.0, 3.0]),
         "string": _tensor("w", [1], data_type=TensorProto.STRING, string_data=[b"a"]),
         "external": _tensor("w", [6, 4, 3, 3])}[case]
    if case == "external":
        t.data_location = TensorProto.EXTERNAL
        e = t.external_data.add()
        e.key, e.value = "location", "/etc/passwd"
    tracemalloc.start()
    with pytest.raises(CnnGraphError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        load(_with_weight(t).SerializeToString())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak} bytes allocated"


def test_hostile_graphs():
    # an input nothing produces (a truncated or edited graph)
    m = _model([helper.make_node("Relu", ["ghost"], ["y"], name="r")])
    with pytest.raises(CnnGraphError, match="r: input 'ghost' is produced by no node"):
        load(m)
    # a cycle
    m = _model([helper.make_node("Relu", ["b"], ["a"], name="r1"), helper.make_node("Relu", ["a"], ["b"], name="r2"),
                helper.make_node("Add", ["x", "b"], ["y"], name="sum")])
    with pytest.raises(CnnGraphError, match="cycle"):
        load(m)
    # integer input, rank-3 input, huge input dims, no shape
    for vi, msg in ((helper.make_tensor_value_info("x", TensorProto.INT64, [1, 4, 8, 8]), "INT64"),
                    (helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8]), "rank 3"),
                    (helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2**40, 8]), "sizes must be 1 to"),
                    (helper.make_tensor_value_info("x", TensorProto.FLOAT, None), "no declared shape")):
        with pytest.raises(CnnGraphError, match=msg):
            load(_model([helper.make_node("Relu", ["x"], ["y"], name="r")], inputs=[vi]))
    # folding that would allocate a huge constant
    m = _model([helper.make_node("ConstantOfShape", ["shape"], ["big"], name="cos"),
                helper.make_node("Add", ["x", "big"], ["y"], name="add")],
               [numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "shape")])
    with pytest.raises(CnnGraphError, match="cos: ConstantOfShape"):
        load(m)
    # control flow
    body = helper.make_graph([], "body", [], [])
    m = _model([helper.make_node("If", ["x"], ["y"], name="branch", then_branch=body, else_branch=body)])
    with pytest.raises(CnnGraphError, match="If \\(branch\\)"):
        load(m)


def test_missing_file_and_bytes_input(tmp_path):
    with pytest.raises(CnnGraphError, match="no such ONNX file"):
        load(tmp_path / "none.onnx")
    m = _conv_model()
    assert load(m.SerializeToString()).nodes["conv"]["shape"] == (6, 8, 8)


def _ort_refuses(m) -> bool:
    """True when ONNX Runtime refuses to load or run ``m`` (skips when it is not installed)."""
    ort = pytest.importorskip("onnxruntime")
    try:
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        s.run(None, {"x": np.ones((1, 4, 8, 8), np.float32)})
    except Exception:
        return True
    return False


def _spec_violations():
    w = numpy_helper.from_array(np.ones((6, 4, 3, 3), np.float32), "w")
    return {
        "dilation 0": (_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", dilations=[0, 1])], [w]),
                       r"conv \(conv2d\): dilation must be positive \(dilation=\(0, 1\)\)"),
        "stride 0": (_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[0, 1])], [w]),
                     r"conv \(conv2d\): stride must be positive"),
        "duplicate producers": (_model([helper.make_node("Relu", ["x"], ["a"], name="r1"),
                                        helper.make_node("Sigmoid", ["x"], ["a"], name="r2"),
                                        helper.make_node("Relu", ["a"], ["y"], name="r3")]),
                                "tensor 'a' is produced twice"),
        "Expand that does not broadcast": (
            _model([helper.make_node("Expand", ["x", "shape"], ["e"], name="expand"),
                    helper.make_node("Mul", ["x", "e"], ["y"], name="mul")],
                   [numpy_helper.from_array(np.array([1, 3, 8, 8], np.int64), "shape")]),
            r"expand: Expand to \[1, 3, 8, 8\] does not broadcast"),
        "opset 99": (_model([helper.make_node("Relu", ["x"], ["y"], name="r")], opset=99),
                     "opset 99 is newer than cnngraph reads"),
    }


@pytest.mark.parametrize("case", list(_spec_violations()))
def test_spec_violations_are_refused_as_onnx_runtime_refuses_them(case):
    m, message = _spec_violations()[case]
    with pytest.raises(CnnGraphError, match=message):
        load(m)
    assert _ort_refuses(m), f"ONNX Runtime accepts {case}"
