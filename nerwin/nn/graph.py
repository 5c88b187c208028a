"""A computational graph of gates, run forward in topological order and backward in reverse.

Each node names the values it reads and the value it writes. Values nobody
writes are the graph's inputs (fed by the caller). Backward walks the nodes
in reverse, multiplying each upstream gradient by the gate's local
Jacobian ("downstream = upstream x local"); a value read by several nodes
gets the sum of their gradients.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nerwin.nn.gates import Gate


@dataclass(frozen=True)
class Node:
    """One gate in the graph: ``output = gate.forward(*inputs)``; ``name`` prefixes its params."""

    name: str
    gate: Gate
    inputs: tuple[str, ...]
    output: str


def topological_order(nodes: list[Node]) -> list[Node]:
    """Kahn's algorithm; ties keep the order the nodes were given in, so runs repeat exactly."""
    producer = {node.output: node for node in nodes}
    if len(producer) != len(nodes):
        raise ValueError("two nodes write the same value")
    remaining = list(nodes)
    produced: set[str] = set()
    ordered: list[Node] = []
    while remaining:
        ready = next(
            (n for n in remaining if all(v in produced or v not in producer for v in n.inputs)),
            None,
        )
        if ready is None:
            raise ValueError("the graph has a cycle")
        ordered.append(ready)
        remaining.remove(ready)
        produced.add(ready.output)
    return ordered


class Graph:
    """Gates wired by value names; ``forward`` and ``backward`` walk them in order."""

    def __init__(self, nodes: list[Node]):
        self.nodes = topological_order(nodes)

    def forward(self, feeds: dict[str, object], until: str | None = None) -> dict[str, object]:
        """Run the nodes in order and return every value, the feeds included.

        A node whose output is fed is skipped, so a caller can feed an
        intermediate value (a gradient check of dJ/dx feeds x). ``until``
        stops after the node that writes that value.
        """
        values: dict[str, object] = dict(feeds)
        for node in self.nodes:
            if node.output not in feeds:
                values[node.output] = node.gate.forward(*(values[v] for v in node.inputs))
            if node.output == until:
                break
        return values

    def backward(self, output_grads: dict[str, object]) -> dict[str, np.ndarray]:
        """Seed dJ/d(value) for some outputs; returns dJ/d(value) of every float value reached."""
        grads: dict[str, object] = dict(output_grads)
        for node in reversed(self.nodes):
            if node.output not in grads:
                continue
            input_grads = node.gate.backward(grads[node.output])
            for value, grad in zip(node.inputs, input_grads, strict=True):
                if grad is None:
                    continue
                grads[value] = grad if value not in grads else grads[value] + grad
        return grads

    def parameters(self) -> Iterator[tuple[str, Gate, str]]:
        """(qualified name "node.param", gate, param name) for every parameter, in graph order."""
        for node in self.nodes:
            for param in node.gate.params:
                yield f"{node.name}.{param}", node.gate, param
