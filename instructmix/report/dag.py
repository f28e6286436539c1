"""The dependency DAG of the probe stage as a figure.

networkx lays the categories out in columns by tier (`multipartite_layout`: base, middle,
dependent); every label sits in an opaque box measured from the rendered text. Edges are
routed so that none runs through a box: between neighbouring columns a straight line, across
the middle column through the nearest gap between its boxes, inside one column around its
right side. Each edge starts at the border of its base's box and its arrowhead ends at the
border of its own dependent's box.
"""

from __future__ import annotations

import networkx as nx
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path

from instructmix.report.figures import plotting, to_svg
from instructmix.report.fmt import slug

TIERS = ("base", "middle", "dependent")
TIER_COLOURS = {"base": "#dbe9f6", "middle": "#eeeeee", "dependent": "#fde0c5"}
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in data coordinates


def dag_graph(deps: dict) -> nx.DiGraph:
    """The DAG of `PROBE.dependencies` as a networkx graph; node attribute `layer` = index
    of the node's tier (base 0, middle 1, dependent 2; untiered nodes are middle)."""
    tiers = deps.get("tiers") or {}
    cats = list(dict.fromkeys([*(deps.get("categories") or []), *tiers]))
    graph = nx.DiGraph()
    for k, tier in enumerate(TIERS):
        for c in sorted(c for c in cats if tiers.get(c, "middle") == tier):
            graph.add_node(c, layer=k, tier=tier)
    for e in deps.get("edges") or []:
        if e.get("base") in graph and e.get("dependent") in graph:
            graph.add_edge(e["base"], e["dependent"], weight=e.get("weight"))
    return graph


def _node_boxes(fig, ax, pos: dict, graph: nx.DiGraph) -> dict[str, Box]:
    """A labelled box per node, sized from the rendered label (SVG group dag-node-<name>)."""
    texts = {c: ax.text(x, y, c, ha="center", va="center", fontsize=9, zorder=3)
             for c, (x, y) in pos.items()}
    renderer = fig.canvas.get_renderer()
    inv = ax.transData.inverted()
    boxes = {}
    for c, t in texts.items():
        bb = t.get_window_extent(renderer)
        (x0, y0), (x1, y1) = inv.transform([[bb.x0 - 9, bb.y0 - 6], [bb.x1 + 9, bb.y1 + 6]])
        patch = FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="square,pad=0",
                               facecolor=TIER_COLOURS[graph.nodes[c]["tier"]],
                               edgecolor="#555", lw=1.0, zorder=2)
        patch.set_gid(f"dag-node-{slug(c)}")
        ax.add_patch(patch)
        boxes[c] = (float(x0), float(y0), float(x1), float(y1))
    return boxes


def _leave(box: Box, p, q) -> tuple[float, float]:
    """Where the segment p -> q (p inside `box`) crosses the box's border."""
    dx, dy = q[0] - p[0], q[1] - p[1]
    ts = [(box[2] - p[0]) / dx if dx > 0 else (box[0] - p[0]) / dx if dx < 0 else 1.0,
          (box[3] - p[1]) / dy if dy > 0 else (box[1] - p[1]) / dy if dy < 0 else 1.0]
    t = max(0.0, min(ts + [1.0]))
    return (p[0] + t * dx, p[1] + t * dy)


def _hits(p, q, box: Box) -> bool:
    """Does the segment p -> q pass through `box`? (sampled; boxes are not thin)"""
    return any(box[0] <= p[0] + (q[0] - p[0]) * k / 64 <= box[2]
               and box[1] <= p[1] + (q[1] - p[1]) * k / 64 <= box[3] for k in range(65))


def _gap(column: list[Box], y: float, used: dict) -> float:
    """The free height in a column of boxes nearest to `y` (between two boxes, above or
    below them), shifted a little for each edge that already uses it."""
    spans = sorted((b[1], b[3]) for b in column)
    pad = min([lo2 - hi1 for (_, hi1), (lo2, _) in zip(spans, spans[1:], strict=False)]
              + [spans[0][1] - spans[0][0]])
    gaps = [spans[0][0] - pad / 2, spans[-1][1] + pad / 2]
    gaps += [(hi1 + lo2) / 2 for (_, hi1), (lo2, _) in zip(spans, spans[1:], strict=False)]
    best = min(gaps, key=lambda g: (abs(g - y), g))
    k = used[best] = used.get(best, -1) + 1
    return best + (k % 3 - 1) * pad / 6 * (k > 0)


def route(b: str, d: str, graph: nx.DiGraph, pos: dict, boxes: dict, used: dict) -> list:
    """The vertices of the edge b -> d (see module doc)."""
    p, q = pos[b], pos[d]
    lb, ld = graph.nodes[b]["layer"], graph.nodes[d]["layer"]
    if lb == ld:  # around the right side of the column
        column = [boxes[c] for c in graph if graph.nodes[c]["layer"] == lb]
        x = max(bx[2] for bx in column) + (max(bx[2] - bx[0] for bx in column) * 0.15
                                           * (1 + used.setdefault(("side", lb), 0)))
        used[("side", lb)] += 1
        return [(boxes[b][2], p[1]), (x, p[1]), (x, q[1]), (boxes[d][2], q[1])]
    between = [boxes[c] for c in graph if lb < graph.nodes[c]["layer"] < ld]
    if not any(_hits(p, q, bx) for bx in between):
        return [_leave(boxes[b], p, q), _leave(boxes[d], q, p)]
    xa, xb = min(bx[0] for bx in between), max(bx[2] for bx in between)
    y = _gap(between, (p[1] + q[1]) / 2, used)
    a, c = (xa - 0.1 * (xb - xa), y), (xb + 0.1 * (xb - xa), y)
    return [_leave(boxes[b], p, a), a, c, _leave(boxes[d], q, c)]


def dag_figure(deps: dict, title: str) -> str:
    """The DAG by tier (see module doc); node boxes are SVG groups dag-node-<name>, edges
    dag-edge_<base>_to_<dependent>."""
    graph = dag_graph(deps)
    pos = {c: (float(x), float(y)) for c, (x, y) in
           nx.multipartite_layout(graph, subset_key="layer", align="vertical").items()}
    layers = sorted({graph.nodes[c]["layer"] for c in graph})
    rows = max([sum(graph.nodes[c]["layer"] == k for c in graph) for k in layers] + [1])
    xs, ys = [p[0] for p in pos.values()] or [0.0], [p[1] for p in pos.values()] or [0.0]
    xspan, yspan = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    height = 1.3 + 0.5 * rows
    with plotting(8.0, height, layout=None) as fig:
        ax = fig.add_axes((0.01, 0.1 / height, 0.98, (height - 0.8) / height))
        ax.set_axis_off()
        ax.set_xlim(min(xs) - 0.3 * xspan, max(xs) + 0.3 * xspan)
        ax.set_ylim(min(ys) - 0.6 * yspan / rows, max(ys) + 0.6 * yspan / rows)
        boxes, used = _node_boxes(fig, ax, pos, graph), {}
        for b, d in sorted(graph.edges):
            arrow = FancyArrowPatch(path=Path(route(b, d, graph, pos, boxes, used)),
                                    arrowstyle="-|>", mutation_scale=14, color="#333",
                                    lw=1.2, zorder=1)
            arrow.set_gid(f"dag-edge_{slug(b)}_to_{slug(d)}")
            ax.add_patch(arrow)
        for k in layers:
            x = next(pos[c][0] for c in graph if graph.nodes[c]["layer"] == k)
            ax.annotate(TIERS[k], xy=(x, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(0, 8), textcoords="offset points", ha="center", va="bottom",
                        fontweight="bold", fontsize=9)
        if not graph:
            ax.text(0.5, 0.5, "no categories", ha="center", va="center",
                    transform=ax.transAxes)
        fig.suptitle(title, fontweight="bold", fontsize=10, y=0.99, va="top")
        return to_svg(fig, title)
