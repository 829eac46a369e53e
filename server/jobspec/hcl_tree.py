"""python-hcl2's lark tree as the HCL modules read it: a node's children and position,
and ``HclError``, the error every stage raises with the line and column at fault."""
from __future__ import annotations

from lark import Token, Tree


class HclError(Exception):
    """A problem in the job file, at ``line``/``column`` (1-based)."""

    def __init__(self, line: int, column: int, summary: str, detail: str = ""):
        super().__init__(f"{line},{column}: {summary}" + (f"; {detail}" if detail else ""))
        self.line, self.column, self.summary, self.detail = line, column, summary, detail

    def render(self, filename: str) -> str:
        text = f"{filename}:{self.line},{self.column}: {self.summary}"
        return text + (f"; {self.detail}" if self.detail else "")


def position(node) -> tuple[int, int]:
    if isinstance(node, Token):
        return node.line or 1, node.column or 1
    meta = getattr(node, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        return meta.line, meta.column
    for child in getattr(node, "children", ()):
        if isinstance(child, (Token, Tree)):
            return position(child)
    return 1, 1


def error_at(node, summary: str, detail: str = "") -> HclError:
    line, column = position(node)
    return HclError(line, column, summary, detail)


def children(node: Tree) -> list:
    """Children that carry meaning (not punctuation tokens or comments/newlines)."""
    return [c for c in node.children
            if isinstance(c, Tree) and c.data != "new_line_or_comment"]
