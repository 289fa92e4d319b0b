"""The pipeline graph of a run as an inline SVG, laid out by hand (no JavaScript, no network).

Datasets sit in the first column; each step sits one column right of the latest step it reads
from. Edges follow the recorded input/output bindings and carry the data name. Steps are
coloured by status; a reused step carries a "reused" badge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from .lineage import DatasetRef, Lineage

NODE_W, NODE_H = 210, 64
DATA_W, DATA_H = 170, 40
COL_GAP, ROW_GAP = 90, 34
PAD = 24

STATUS_COLOURS = {
    "Completed": ("#e8f5ec", "#1a7f37"),
    "Failed": ("#fdecec", "#cf222e"),
    "Running": ("#e8f0fe", "#0969da"),
    "Canceled": ("#fff4e5", "#bc4c00"),
    "NotStarted": ("#f3f4f6", "#6e7781"),
}
REUSED = "#8250df"


@dataclass
class Node:
    key: str
    label: str
    sub: str
    kind: str  # "dataset" or "step"
    status: str = ""
    reused: bool = False
    duration: str = ""
    column: int = 0
    row: int = 0
    x: float = 0
    y: float = 0
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (source node key, data label)

    @property
    def width(self) -> int:
        return DATA_W if self.kind == "dataset" else NODE_W

    @property
    def height(self) -> int:
        return DATA_H if self.kind == "dataset" else NODE_H


def build_nodes(lineage: Lineage) -> list[Node]:
    nodes: dict[str, Node] = {}
    for step in lineage.steps:
        for source in lineage.inputs(step).values():
            dataset = DatasetRef.parse(source)
            if dataset is not None and source not in nodes:
                nodes[source] = Node(source, dataset.name, f"dataset · version {dataset.version}", "dataset")
    for step in lineage.steps:
        duration = f"{step.duration:.1f}s" if step.duration is not None and step.status != "NotStarted" else ""
        node = Node(step.id, step.name, str(step.properties.get("plugin") or ""), "step", step.status,
                    bool(step.reused_from), duration)
        for port, source in lineage.inputs(step).items():
            producer = lineage.producer(source)
            if producer is not None:
                node.inputs.append((producer.id, source))
            elif source in nodes:
                node.inputs.append((source, port))
        nodes[step.id] = node
    # columns: longest path from a dataset
    changed = True
    for node in nodes.values():
        node.column = 0 if node.kind == "dataset" else 1
    guard = 0
    while changed and guard < 100:
        changed, guard = False, guard + 1
        for node in nodes.values():
            for source, _ in node.inputs:
                if source in nodes and nodes[source].column + 1 > node.column:
                    node.column, changed = nodes[source].column + 1, True
    if not any(n.kind == "dataset" for n in nodes.values()):
        for node in nodes.values():
            node.column -= 1
    rows: dict[int, int] = {}
    for node in nodes.values():
        node.row = rows.get(node.column, 0)
        rows[node.column] = node.row + 1
    return list(nodes.values())


def render_svg(lineage: Lineage) -> str:
    nodes = build_nodes(lineage)
    if not nodes:
        return "<p class='muted'>No steps recorded.</p>"
    columns = max(n.column for n in nodes) + 1
    tallest = max(sum(1 for n in nodes if n.column == c) for c in range(columns))
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP + 10
    width = PAD * 2 + columns * NODE_W + (columns - 1) * COL_GAP
    by_key = {n.key: n for n in nodes}
    for node in nodes:
        in_column = [n for n in nodes if n.column == node.column]
        block = len(in_column) * NODE_H + (len(in_column) - 1) * ROW_GAP
        top = (height - block) / 2
        node.x = PAD + node.column * (NODE_W + COL_GAP) + (NODE_W - node.width) / 2
        node.y = top + node.row * (NODE_H + ROW_GAP) + (NODE_H - node.height) / 2
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="pipeline graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#8c959f"/></marker></defs>',
    ]
    for node in nodes:
        for source_key, label in node.inputs:
            source = by_key.get(source_key)
            if source is None:
                continue
            x1, y1 = source.x + source.width, source.y + source.height / 2
            x2, y2 = node.x - 2, node.y + node.height / 2
            bend = max(30.0, (x2 - x1) / 2)
            parts.append(f'<path class="edge" d="M {x1:.1f} {y1:.1f} C {x1 + bend:.1f} {y1:.1f}, {x2 - bend:.1f} '
                         f'{y2:.1f}, {x2:.1f} {y2:.1f}" fill="none" stroke="#8c959f" stroke-width="1.6" '
                         f'marker-end="url(#arrow)"/>')
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2 - 6
            text = escape(_clip(label, 22))
            parts.append(f'<text x="{mx:.1f}" y="{my:.1f}" text-anchor="middle" class="edge-label" font-size="11" '
                         f'fill="#57606a" stroke="#ffffff" stroke-width="3" paint-order="stroke">{text}</text>')
    for node in nodes:
        parts.append(_node_svg(node))
    parts.append("</svg>")
    return "".join(parts)


def _node_svg(node: Node) -> str:
    if node.kind == "dataset":
        return (f'<g class="node dataset"><rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width}" '
                f'height="{node.height}" rx="20" fill="#f6f8fa" stroke="#57606a" stroke-dasharray="4 3"/>'
                f'<text x="{node.x + node.width / 2:.1f}" y="{node.y + 17:.1f}" text-anchor="middle" font-size="13" '
                f'font-weight="600" fill="#24292f">{escape(_clip(node.label, 22))}</text>'
                f'<text x="{node.x + node.width / 2:.1f}" y="{node.y + 31:.1f}" text-anchor="middle" font-size="10.5" '
                f'fill="#57606a">{escape(node.sub)}</text></g>')
    fill, stroke = STATUS_COLOURS.get(node.status, STATUS_COLOURS["NotStarted"])
    status = "Reused" if node.reused else node.status
    parts = [f'<g class="node step" data-status="{escape(node.status)}">',
             f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width}" height="{node.height}" rx="8" '
             f'fill="{fill}" stroke="{stroke}" stroke-width="2"/>',
             f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="6" height="{node.height}" rx="3" fill="{stroke}"/>',
             f'<text x="{node.x + 16:.1f}" y="{node.y + 22:.1f}" font-size="13.5" font-weight="600" '
             f'fill="#24292f">{escape(_clip(node.label, 24))}</text>',
             f'<text x="{node.x + 16:.1f}" y="{node.y + 39:.1f}" font-size="11" fill="#57606a">'
             f'{escape(_clip(node.sub, 30))}</text>',
             f'<text x="{node.x + 16:.1f}" y="{node.y + 55:.1f}" font-size="11" font-weight="600" fill="{stroke}">'
             f'{escape(node.status)}{" · " + escape(node.duration) if node.duration else ""}</text>']
    if node.reused:
        bx = node.x + node.width - 62
        parts.append(f'<g class="badge-reused"><rect x="{bx:.1f}" y="{node.y - 9:.1f}" width="56" height="18" rx="9" '
                     f'fill="{REUSED}"/><text x="{bx + 28:.1f}" y="{node.y + 4:.1f}" text-anchor="middle" '
                     f'font-size="10.5" font-weight="700" fill="#ffffff">reused</text></g>')
    parts.append(f"<title>{escape(node.label)} ({escape(node.sub)}): {escape(status)}</title></g>")
    return "".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def graph_summary(lineage: Lineage) -> dict[str, Any]:
    """The graph as data (for tests): nodes and edges."""
    nodes = build_nodes(lineage)
    return {"nodes": [{"key": n.key, "label": n.label, "kind": n.kind, "status": n.status, "reused": n.reused,
                       "column": n.column} for n in nodes],
            "edges": [(source, n.key, label) for n in nodes for source, label in n.inputs]}
