"""HCL2 job files to the Jobs API's JSON job, as Nomad 1.x's ``jobspec2`` maps them.

``parse_job(text, variables)`` returns the job as a dict with Nomad's JSON field names
(unset fields absent, so decoding it into ``fsm.structs.Job`` leaves them null).

The file may hold ``variable "x" {}`` blocks (values from ``variables``, then their
``default``), ``locals {}`` and exactly one ``job "id" {}`` block. Every block of the job
is decoded by ``hcl_blocks.py``; expressions are evaluated by ``hcl_eval.py``. Every
error is a ``JobFileError`` whose message starts ``FILE:LINE,COLUMN: summary; detail``.
"""
from __future__ import annotations

from typing import Any

from lark import Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from caravan.server.jobspec.hcl_blocks import JOB, Context, Item, check_labels, read_body
from caravan.server.jobspec.hcl_eval import Evaluator
from caravan.server.jobspec.hcl_tree import HclError, error_at, position
from caravan.server.jobspec.hcl_types import convert_variable, type_constraint


class JobFileError(Exception):
    """A job file that cannot be turned into a job; the message names the position."""


def parse_job(text: str, variables: dict[str, Any] | str | None = None,
              filename: str = "input.hcl") -> dict:
    try:
        return _parse(text, variables)
    except HclError as exc:
        raise JobFileError(exc.render(filename)) from None
    except RecursionError:
        raise JobFileError(f"{filename}: the file is nested too deeply") from None


def _parse(text: str, variables) -> dict:
    tree = _syntax_tree(text)
    top = read_body(text, tree.children[0])
    declared, local_exprs, jobs = {}, {}, []
    for item in top:
        if item.kind == "block" and item.name == "variable":
            check_labels(item, 1, "variable")
            declared[item.labels[0]] = item
        elif item.kind == "block" and item.name == "locals":
            for attr in read_body(text, item.node):
                if attr.kind != "attr":
                    raise error_at(attr.at, "Unexpected block", "locals holds arguments only")
                local_exprs[attr.name] = attr.node
        elif item.kind == "block" and item.name == "job":
            jobs.append(item)
        else:
            what = "block type" if item.kind == "block" else "argument"
            raise error_at(item.at, f"Unsupported {what}",
                           f'"{item.name}" is not expected at the top level; a job file holds '
                           f'one job block, variable blocks and locals')
    if len(jobs) != 1:
        at = jobs[1].at if jobs else tree
        raise error_at(at, "Invalid job file",
                       "expected exactly one job block" + ("" if jobs else ", found none"))
    values = _variable_values(text, declared, _given_variables(variables))
    ctx = Context(text, Evaluator(text, values, local_exprs))
    job_item = jobs[0]
    check_labels(job_item, 1, "job")
    job = ctx.decode(job_item, JOB, f'job "{job_item.labels[0]}"')
    job.setdefault("Name", job["ID"])
    return job


# --- syntax ------------------------------------------------------------------------------

_TOKEN_WORDS = {
    "NAME": "a name", "DBLQUOTE": 'a quote (")', "LBRACE": "{", "RBRACE": "}", "EQ": "=",
    "LSQB": "[", "RSQB": "]", "LPAR": "(", "RPAR": ")", "COMMA": ",", "INT_LITERAL": "a number",
    "FLOAT_LITERAL": "a number", "NL_OR_COMMENT": "a new line", "INTERP_START": "${",
    "STRING_CHARS": "string characters", "HEREDOC_TEMPLATE": "a heredoc",
    "TRUE": "true", "FALSE": "false", "NULL": "null", "COLON": ":", "$END": "end of file",
}

# the tokens that may start an expression: when all are expected, say "a value"
_VALUE_START = {"DBLQUOTE", "INT_LITERAL", "NAME", "LSQB", "LBRACE"}
_VALUE_TOKENS = _VALUE_START | {"FLOAT_LITERAL", "LPAR", "MINUS", "NOT", "TRUE", "FALSE", "NULL",
                                "HEREDOC_TEMPLATE", "HEREDOC_TEMPLATE_TRIM", "TEMPLATE_STRING",
                                "NL_OR_COMMENT"}


def _syntax_tree(text: str) -> Tree:
    from hcl2.api import parses_to_tree
    try:
        return parses_to_tree(text)
    except (UnexpectedToken, UnexpectedCharacters, UnexpectedEOF) as exc:
        line, column = getattr(exc, "line", 1), getattr(exc, "column", 1)
        if line is None or line < 1:  # at the end of the input
            line, column = text.count("\n") + 1, 1
        wanted = set(getattr(exc, "expected", ()) or ())
        value = _VALUE_START <= wanted
        expected = sorted({_TOKEN_WORDS[t] for t in wanted - (_VALUE_TOKENS if value else set())
                           if t in _TOKEN_WORDS})
        if value:
            expected.insert(0, "a value (a string, number, name, list or object)")
        found = ""
        if isinstance(exc, UnexpectedToken):
            tok = exc.token
            lead = str(tok)[:len(str(tok)) - len(str(tok).lstrip())]
            if lead and str(tok).strip():  # point at the token's text, not its leading space
                line += lead.count("\n")
                column = len(lead) - lead.rfind("\n") if "\n" in lead else column + len(lead)
            found = "end of file" if tok.type == "$END" else \
                repr((str(tok).strip() or tok.type).splitlines()[0])
        elif isinstance(exc, UnexpectedCharacters):
            found = repr(text[exc.pos_in_stream]) if exc.pos_in_stream < len(text) else ""
        detail = (f"unexpected {found}" if found else "invalid syntax") + \
            (f", expected {' or '.join(expected)}" if expected else "")
        raise HclError(line, column, "Invalid syntax", detail) from None
    except LarkError as exc:
        raise HclError(1, 1, "Invalid syntax", str(exc).splitlines()[0]) from None


# --- variables --------------------------------------------------------------------------


def _given_variables(variables) -> dict[str, tuple[Any, Any]]:
    """``Variables`` as Nomad takes it, var-file text (``name = value`` lines), or a map:
    name -> (value, where it was given)."""
    if variables is None or variables == "":
        return {}
    if isinstance(variables, dict):
        return {k: (v, None) for k, v in variables.items()}
    if not isinstance(variables, str):
        raise HclError(1, 1, "Invalid variables", "Variables must be var-file text or a map")
    try:
        tree = _syntax_tree(variables)
    except HclError as exc:
        raise HclError(exc.line, exc.column, f"Invalid variables: {exc.summary}",
                       exc.detail) from None
    out = {}
    for item in read_body(variables, tree.children[0]):
        if item.kind != "attr":
            raise error_at(item.at, "Invalid variables", "the variables hold name = value only")
        out[item.name] = (Evaluator(variables, {}).value(item.node), item.at)
    return out


def _variable_values(text: str, declared: dict[str, Item],
                     given: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    for name, (_, at) in given.items():
        if name not in declared:
            raise HclError(*(position(at) if at is not None else (1, 1)),
                           "Undefined variable",
                           f'a value was given for "{name}", but the job file declares no '
                           f'variable "{name}"')
    values = {}
    for name, item in declared.items():
        spec = {i.name: i for i in read_body(text, item.node)}
        for key, attr in spec.items():
            if key not in ("type", "default", "description", "sensitive") or attr.kind != "attr":
                raise error_at(attr.at, "Unsupported argument",
                               f'"{key}" is not expected in variable "{name}"')
        typ = type_constraint(spec["type"].node) if "type" in spec else ("any",)
        if name in given:
            value, at = given[name]
            where = at if at is not None else item.at
        elif "default" in spec:
            value, where = Evaluator(text, {}).value(spec["default"].node), spec["default"].at
        else:
            raise error_at(item.at, "Missing required variable",
                           f'variable "{name}" has no default; give it a value in Variables')
        try:
            values[name] = convert_variable(value, typ)
        except ValueError as exc:
            raise error_at(where, "Invalid value for variable",
                           f'variable "{name}": {exc}') from None
    return values
