"""The compiler pipeline: passes (:mod:`cnngraph.compiler.passes`), then lowering and memory
planning (:mod:`cnngraph.compiler.plan`).

>>> from cnngraph import zoo
>>> from cnngraph.compiler.weights import init
>>> g = zoo.build("resnet50")
>>> p = compile(g, init(g, seed=0))
>>> len(p.steps), p.steps[0].op, p.steps[0].act1
(57, 'conv2d', 'relu')
"""
from __future__ import annotations

from cnngraph.compiler.algorithms import choose_algorithms, choose_chunk
from cnngraph.compiler.plan import Plan, group_expansions, group_gates, plan_memory


def compile(g, weights: dict | None = None, input=None, fold: bool = True, fuse: bool = True,
            batch: int = 1, consume_weights: bool = False) -> Plan:
    """Run the passes and return the execution plan.

    ``input`` re-infers the graph for another input shape; ``weights`` (torchvision names)
    are folded with the batch norms and kept in ``plan.weights``; ``fold``/``fuse`` switch
    batch-norm folding and epilogue fusion (and the nesting of squeeze-and-excitation gates
    into their product, :func:`~cnngraph.compiler.plan.group_gates`, and of expansions into
    their depthwise convolution, :func:`~cnngraph.compiler.plan.group_expansions`) off (for tests and comparisons); ``batch`` is the
    batch size the plan is made for: CPU backends run it in passes of ``plan.chunk`` images
    (:func:`~cnngraph.compiler.algorithms.choose_chunk`), and each convolution's algorithm is
    chosen for that many (:mod:`cnngraph.compiler.algorithms`; the plan runs at any batch size). ``consume_weights`` folds the batch norms into
    ``weights`` itself (the caller's dict then holds the plan's folded weights, and an
    original array is freed once folded when nothing else holds it), for callers that need
    the original weights no more: it lowers the peak memory of compiling by about the
    weights' size.
    """
    from cnngraph.compiler.passes import eliminate_dead, fold_batchnorm, fuse_epilogues, schedule
    from cnngraph.compiler.plan import lower
    from cnngraph.ir.graph import as_graph, check_weights, with_input

    g = as_graph(g)
    if input is not None:
        g = with_input(g, input)
    if weights is not None:
        check_weights(g, weights)  # one line naming the layer, not a reshape error in a kernel
    g = eliminate_dead(g)
    if fold:
        g, weights = fold_batchnorm(g, weights, in_place=consume_weights)
    order = schedule(g)
    fusions = fuse_epilogues(g, order) if fuse else {}
    return finish(lower(g, order, fusions, weights), batch, fuse)


def finish(plan: Plan, batch: int = 1, nest: bool = True) -> Plan:
    """The plan-level passes after lowering (in place; returns the plan): each convolution's
    algorithm for ``batch``, the nesting of gates and expansions (``nest``), the CPU pass
    size, the algorithms again for a pass's images when the batch is split, and the memory
    plan. They read the steps alone, not the graph: :func:`cnngraph.compiler.plan_file.load`
    runs them on a saved plan's steps, in a process without networkx.
    """
    plan.batch = batch
    plan = choose_algorithms(plan, batch)
    if nest:  # nesting reads the algorithms; the pass size reads the nesting (values inside a step)
        plan = group_gates(group_expansions(plan))
    c = choose_chunk(plan, batch)
    if c is not None:
        plan.chunk, plan.chunk_why = int(c.algorithm), c.why
        if plan.chunk != batch:  # each convolution's algorithm for the pass's images
            plan = choose_algorithms(plan, plan.chunk)
    plan.memory = plan_memory(plan)  # after nesting: a step's nested values live through the whole step
    return plan
