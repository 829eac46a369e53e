"""Evaluate HCL2 expressions from python-hcl2's lark tree, as Nomad's jobspec2 does.

python-hcl2 parses; this module gives the parsed expressions their values: literals,
quoted and heredoc templates (``${...}`` interpolation, ``$${`` escapes), tuples and
objects, ``var.x`` / ``local.x`` references with attribute and index traversal,
arithmetic, comparison, logic, conditionals, ``for`` expressions and a set of the
standard functions.

A reference whose root is not ``var`` or ``local`` (``${attr.kernel.name}``,
``${node.unique.id}``, ``${NOMAD_ALLOC_ID}``, ``${meta.x}``) is resolved by the client at
run time, so, like Nomad, we keep it as written: inside a template it renders as
``${...}`` again, and a bare one becomes that string.

Every error is an ``HclError`` (``hcl_tree``) with the line and column of the offending
expression; value conversions and ``Deferred`` references are in ``hcl_values``.
"""
from __future__ import annotations

import math
import re
from typing import Any

from lark import Token, Tree

from caravan.server.jobspec.hcl_functions import FUNCTIONS, to_string
from caravan.server.jobspec.hcl_tree import HclError, children, error_at, position
from caravan.server.jobspec.hcl_values import Deferred, bool_value, finish_value, index_value, number_value, type_name

RUNTIME_ROOTS = ("var", "local")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)', re.S)


def _unescape(node, text: str) -> str:
    def one(m: re.Match) -> str:
        seq = m.group(1)
        if seq[0] in "uU":
            return chr(int(seq[1:], 16))
        if seq in _ESCAPES:
            return _ESCAPES[seq]
        raise error_at(node, "Invalid escape sequence",
                       f'the escape "\\{seq}" is not valid in a quoted string')
    return _ESCAPE.sub(one, text)


class Evaluator:
    """Evaluates expressions of one source text against ``var`` and ``local`` values.

    ``locals_`` holds unevaluated local expressions; each is evaluated on first use.
    """

    def __init__(self, source: str, variables: dict[str, Any],
                 locals_: dict[str, Tree] | None = None):
        self.source = source
        self.variables = variables
        self.local_exprs = locals_ or {}
        self.local_values: dict[str, Any] = {}
        self._evaluating: set[str] = set()
        self.scopes: list[dict[str, Any]] = []

    # --- entry points -------------------------------------------------------------------

    def value(self, node) -> Any:
        """The value of an expression; a runtime reference comes back as its text."""
        v = self.eval(node)
        return finish_value(v)

    def eval(self, node) -> Any:
        kind = node.data if isinstance(node, Tree) else node.type
        method = getattr(self, "_" + kind, None)
        if method is None:
            raise error_at(node, "Unsupported expression", f"{kind} is not supported here")
        return method(node)

    # --- terms --------------------------------------------------------------------------

    def _expr_term(self, node):
        inner = children(node)
        if inner:
            return self.eval(inner[0])
        raise error_at(node, "Invalid expression")

    def _int_lit(self, node):
        return int(str(node.children[0]))

    def _float_lit(self, node):
        value = float(str(node.children[0]))
        return int(value) if value.is_integer() and "e" not in str(node.children[0]).lower() \
            else value

    def _literal_value(self, node):
        return {"true": True, "false": False, "null": None}[str(node.children[0])]

    def _identifier(self, node):
        name = str(node.children[0])
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in RUNTIME_ROOTS:
            raise error_at(node, "Invalid reference",
                           f'"{name}" must be followed by an attribute name, as {name}.NAME')
        return Deferred(self._text(node))

    def _keyword(self, node):
        return Deferred(str(node.children[0]))

    def _text(self, node) -> str:
        meta = node.meta
        return self.source[meta.start_pos:meta.end_pos].strip()

    def _string(self, node):
        parts = [c for c in node.children if isinstance(c, Tree)]
        return self._template(node, parts)

    def _template_string(self, node):
        return _unescape(node, str(node.children[0])[2:-2])

    def _template(self, node, parts: list[Tree]) -> Any:
        out: list[Any] = []
        for part in parts:
            (child,) = part.children
            if isinstance(child, Token):
                if child.type == "STRING_CHARS":
                    out.append(_unescape(part, str(child)))
                else:  # $${ and %%{ stand for a literal ${ and %{
                    out.append(str(child)[1:])
            elif child.data == "interpolation":
                out.append(self.eval(children(child)[0]))
            else:
                raise error_at(child, "Unsupported template directive",
                               "%{ if } and %{ for } directives are not supported; "
                               "use a conditional or for expression inside ${ }")
        if len(out) == 1 and not isinstance(out[0], str):
            return out[0]  # "${var.count}" keeps the variable's type, as in HCL
        return "".join(self._to_template_text(part, v) for v in out)

    def _to_template_text(self, node, value) -> str:
        if isinstance(value, Deferred):
            return str(value)
        if isinstance(value, (list, dict)):
            raise error_at(node, "Invalid template interpolation value",
                           "cannot include a list or an object in a string")
        if value is None:
            raise error_at(node, "Invalid template interpolation value",
                           "the expression result is null")
        return to_string(value)

    def _heredoc_template(self, node):
        return self._heredoc(node, trim=False)

    def _heredoc_template_trim(self, node):
        return self._heredoc(node, trim=True)

    def _heredoc(self, node, trim: bool) -> Any:
        raw = str(node.children[0])
        lines = raw.split("\n")
        body = lines[1:-2]  # drop the <<MARKER line and the MARKER line
        if trim:
            indents = [len(ln) - len(ln.lstrip(" \t")) for ln in body if ln.strip()]
            cut = min(indents, default=0)
            body = [ln[cut:] for ln in body]
        text = "\n".join(body) + ("\n" if body else "")
        line, _ = position(node)
        return self._render_heredoc(text, line + 1)

    def _render_heredoc(self, text: str, first_line: int) -> str:
        """Interpolate ``${...}`` in a heredoc body (python-hcl2 keeps it one token)."""
        out, i = [], 0
        while True:
            j = text.find("${", i)
            if j < 0:
                out.append(text[i:])
                break
            if j > 0 and text[j - 1] == "$":  # $${ is a literal ${
                out.append(text[i:j - 1] + "${")
                i = j + 2
                continue
            out.append(text[i:j])
            end = _closing_brace(text, j + 2)
            line = first_line + text.count("\n", 0, j)
            if end < 0:
                raise HclError(line, 1, "Unterminated template interpolation",
                               "a ${ in the heredoc has no closing }")
            expr = _parse_expression(text[j + 2:end], line)
            sub = Evaluator(f"x = {text[j + 2:end]}\n", self.variables)  # as parsed
            sub.local_exprs, sub.local_values, sub.scopes = \
                self.local_exprs, self.local_values, self.scopes
            try:
                value = sub.eval(expr)
            except HclError as exc:  # positions in the heredoc, not in the snippet
                raise HclError(line + exc.line - 1, exc.column, exc.summary, exc.detail) \
                    from None
            out.append(self._to_template_text(expr, value))
            i = end + 1
        return "".join(out)

    def _tuple(self, node):
        return [self.eval(c) for c in children(node)]

    def _object(self, node):
        out = {}
        for elem in children(node):
            key_node, value_node = children(elem)
            key = self._object_key(key_node)
            out[key] = self.eval(value_node)
        return out

    def _object_key(self, node) -> str:
        inner = children(node)
        if not inner:  # a keyword used as a key
            return str(node.children[0].children[0])
        expr = inner[0]
        bare = children(expr)
        if expr.data == "expr_term" and bare and bare[0].data == "identifier":
            return str(bare[0].children[0])  # {a = 1}: a bare name is the key itself
        key = self.eval(expr)
        if isinstance(key, (dict, list)) or key is None:
            raise error_at(node, "Invalid object key", "a key must be a string")
        return to_string(key)

    # --- traversal ----------------------------------------------------------------------

    def _get_attr_expr_term(self, node):
        base_node, attr = children(node)
        name = str(children(attr)[0].children[0])
        root = children(base_node)
        if root and root[0].data == "identifier" and str(root[0].children[0]) in RUNTIME_ROOTS \
                and not any(str(root[0].children[0]) in s for s in self.scopes):
            return self._root_ref(str(root[0].children[0]), name, attr)
        base = self.eval(base_node)
        if isinstance(base, Deferred):
            return Deferred(self._text(node))
        if isinstance(base, dict):
            if name not in base:
                raise error_at(attr, "Unsupported attribute",
                               f'this object does not have an attribute named "{name}"')
            return base[name]
        raise error_at(attr, "Unsupported attribute",
                       f'cannot read attribute "{name}" of a {type_name(base)}')

    def _root_ref(self, root: str, name: str, node):
        if root == "var":
            if name not in self.variables:
                raise error_at(node, "Reference to undeclared input variable",
                               f'an input variable named "{name}" has not been declared; '
                               f'add a variable "{name}" block')
            return self.variables[name]
        if name in self.local_values:
            return self.local_values[name]
        if name not in self.local_exprs:
            raise error_at(node, "Reference to undeclared local value",
                           f'a local value named "{name}" has not been declared')
        if name in self._evaluating:
            raise error_at(node, "Cycle in local values", f'local.{name} refers to itself')
        self._evaluating.add(name)
        try:
            value = self.local_values[name] = self.eval(self.local_exprs[name])
        finally:
            self._evaluating.discard(name)
        return value

    def _index_expr_term(self, node):
        base_node, index = children(node)
        base = self.eval(base_node)
        if isinstance(base, Deferred):
            return Deferred(self._text(node))
        if index.data == "short_index":
            key: Any = int(str(index.children[-1]))
        else:
            key = self.eval(children(index)[0])
        return index_value(index, base, key)

    def _attr_splat_expr_term(self, node):
        return self._splat(node)

    def _full_splat_expr_term(self, node):
        return self._splat(node)

    def _splat(self, node):
        base_node, splat = children(node)
        base = self.eval(base_node)
        if isinstance(base, Deferred):
            return Deferred(self._text(node))
        items = base if isinstance(base, list) else ([] if base is None else [base])
        out = []
        for item in items:
            for step in children(splat):
                if step.data == "get_attr":
                    name = str(children(step)[0].children[0])
                    item = index_value(step, item, name)
                elif step.data == "short_index":
                    item = index_value(step, item, int(str(step.children[-1])))
                else:
                    item = index_value(step, item, self.eval(children(step)[0]))
            out.append(item)
        return out

    # --- operators ----------------------------------------------------------------------

    def _unary_op(self, node):
        op = str(node.children[0])
        value = self._concrete(node, self.eval(children(node)[0]))
        if op == "-":
            return -number_value(node, value)
        return not bool_value(node, value)

    def _binary_op(self, node):
        left_node, term = children(node)[:2]
        op = str(children(term)[0].children[0])
        right_node = children(term)[1]
        left = self._concrete(left_node, self.eval(left_node))
        if op == "&&" and not bool_value(left_node, left):
            return False
        if op == "||" and bool_value(left_node, left):
            return True
        right = self._concrete(right_node, self.eval(right_node))
        if op in ("&&", "||"):
            return bool_value(right_node, right)
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        a, b = number_value(left_node, left), number_value(right_node, right)
        if op in ("<", ">", "<=", ">="):
            return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        if op in ("/", "%") and b == 0:
            raise error_at(right_node, "Division by zero")
        result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                  "/": lambda: a / b, "%": lambda: math.fmod(a, b)}[op]()
        return int(result) if isinstance(result, float) and result.is_integer() else result

    def _conditional(self, node):
        cond, yes, no = children(node)
        test = bool_value(cond, self._concrete(cond, self.eval(cond)))
        return self.eval(yes if test else no)

    def _concrete(self, node, value):
        if isinstance(value, Deferred):
            raise error_at(node, "Unknown value in an expression",
                           f"${{{value.text}}} is only known on the client at run time; "
                           "it can be used in a string but not computed with")
        return value

    # --- for expressions and functions ------------------------------------------------

    def _for_tuple_expr(self, node):
        intro, *rest = children(node)
        body, cond = rest[0], (rest[1] if len(rest) > 1 else None)
        return [self._scoped(scope, body) for scope in self._for_scopes(intro, cond)]

    def _for_object_expr(self, node):
        intro, *rest = children(node)
        key_node, value_node = rest[0], rest[1]
        cond = rest[2] if len(rest) > 2 and rest[2].data == "for_cond" else None
        out = {}
        for scope in self._for_scopes(intro, cond):
            key = to_string(self._concrete(key_node, self._scoped(scope, key_node)))
            out[key] = self._scoped(scope, value_node)
        return out

    def _for_scopes(self, intro, cond):
        names = [str(n.children[0]) for n in children(intro) if n.data == "identifier"]
        coll_node = [n for n in children(intro) if n.data != "identifier"][0]
        coll = self._concrete(coll_node, self.eval(coll_node))
        if isinstance(coll, dict):
            pairs = sorted(coll.items())
        elif isinstance(coll, list):
            pairs = list(enumerate(coll))
        else:
            raise error_at(coll_node, "Iteration over non-iterable value",
                           f"a for expression needs a list or an object, not a "
                           f"{type_name(coll)}")
        for key, value in pairs:
            scope = {names[-1]: value}
            if len(names) == 2:
                scope[names[0]] = key
            if cond is not None:
                test = self._scoped(scope, children(cond)[0])
                if not bool_value(cond, self._concrete(cond, test)):
                    continue
            yield scope

    def _scoped(self, scope: dict, node):
        self.scopes.append(scope)
        try:
            return self.eval(node)
        finally:
            self.scopes.pop()

    def _function_call(self, node):
        name_node, *rest = children(node)
        name = str(name_node.children[0])
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise error_at(name_node, "Call to unknown function",
                           f'there is no function named "{name}"')
        args = [self._concrete(a, self.eval(a)) for a in (children(rest[0]) if rest else [])]
        if rest and any(isinstance(t, Token) and t.type == "ELLIPSIS" for t in rest[0].children):
            if not args or not isinstance(args[-1], list):
                raise error_at(node, "Invalid expanding argument value",
                               "the last argument before ... must be a list")
            args = [*args[:-1], *args[-1]]
        try:
            return fn(*args)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise error_at(node, "Error in function call",
                           f'call to function "{name}" failed: {exc}') from None


def _closing_brace(text: str, start: int) -> int:
    depth, i, quoted = 0, start, False
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def _parse_expression(text: str, line: int) -> Tree:
    from hcl2.api import parses_to_tree
    from lark.exceptions import LarkError
    try:
        tree = parses_to_tree(f"x = {text}\n")
    except LarkError:
        raise HclError(line, 1, "Invalid template interpolation",
                       f"cannot parse ${{{text.strip()}}} as an expression") from None
    attribute = tree.children[0].children[0] if tree.children[0].children else None
    nodes = children(attribute) if attribute is not None else []
    if attribute is None or attribute.data != "attribute" or len(nodes) < 2:
        raise HclError(line, 1, "Invalid template interpolation",
                       f"cannot parse ${{{text.strip()}}} as an expression")
    return nodes[1]
