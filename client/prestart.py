"""What a task needs on disk before it starts: the dispatch payload, artifacts and
templates. Relative paths start at the task directory and may reach the shared
``alloc/`` directory beside it, as in Nomad; a path that would escape the allocation's
directory is refused (the servers refuse such jobs too; this is the client's own guard)."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import urllib.parse
import zipfile

from caravan.fsm.structs import TaskArtifact, Template


class PrestartError(Exception):
    pass


def inside(base: str, rel: str, what: str, root: str | None = None) -> str:
    """``base/rel`` resolved; PrestartError unless it is inside ``root`` (default:
    ``base``'s parent, the allocation directory)."""
    root_real = os.path.realpath(root if root is not None else os.path.dirname(base))
    path = os.path.realpath(os.path.join(base, rel))
    if path != root_real and not path.startswith(root_real + os.sep):
        raise PrestartError(f"{what} {rel!r} escapes the allocation directory")
    return path


# --- dispatch payload --------------------------------------------------------------------


def write_payload(task_dir: str, file: str, payload: bytes | None) -> str:
    """Write a dispatched job's payload to ``local/<file>``."""
    path = inside(os.path.join(task_dir, "local"), file, "dispatch_payload file",
                  root=os.path.dirname(task_dir))
    data = payload or b""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


# --- artifacts ---------------------------------------------------------------------------

_HASHES = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256,
           "sha512": hashlib.sha512}


def _source_path(source: str, task_dir: str) -> str:
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "file":
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme == "":
        return source if os.path.isabs(source) else os.path.join(task_dir, source)
    raise PrestartError(f"artifact source {source!r}: unsupported scheme {parsed.scheme!r} "
                        f"(file:// and local paths are supported)")


def _verify(path: str, checksum: str) -> None:
    kind, _, want = checksum.partition(":")
    algo = _HASHES.get(kind.lower())
    if algo is None or not want:
        raise PrestartError(f"artifact checksum {checksum!r}: expected TYPE:HEX with TYPE one "
                            f"of {', '.join(sorted(_HASHES))}")
    h = algo()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != want.lower():
        raise PrestartError(f"checksums did not match: expected {want.lower()}, "
                            f"got {h.hexdigest()}")


def _unpack(path: str, dest: str) -> bool:
    """Unpack an archive into ``dest`` refusing members that would land outside it."""
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                inside(dest, member.name, "archive member", root=dest)
            tar.extractall(dest, filter="data")
        return True
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                inside(dest, name, "archive member", root=dest)
            zf.extractall(dest)
        return True
    return False


def fetch_artifact(art: TaskArtifact, task_dir: str) -> str:
    options = dict(art.GetterOptions or {})
    src = _source_path(art.GetterSource, task_dir)
    if not os.path.exists(src):
        raise PrestartError(f"artifact source {art.GetterSource!r}: no such file or directory")
    rel = art.RelativeDest if art.RelativeDest not in (None, "") else "local/"
    dest = inside(task_dir, rel, "artifact destination")
    mode = art.GetterMode or "any"
    if os.path.isdir(src):
        if mode == "file":
            raise PrestartError(f"artifact source {art.GetterSource!r} is a directory but "
                                f"mode is \"file\"")
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return dest
    if mode == "dir" and not (tarfile.is_tarfile(src) or zipfile.is_zipfile(src)):
        raise PrestartError(f"artifact source {art.GetterSource!r} is a file but mode is \"dir\"")
    if "checksum" in options:
        _verify(src, options["checksum"])
    if mode == "file":
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(src, dest)
        return dest
    os.makedirs(dest, exist_ok=True)
    if options.get("archive", "true") != "false" and _unpack(src, dest):
        return dest
    target = os.path.join(dest, os.path.basename(src))
    shutil.copyfile(src, target)
    shutil.copymode(src, target)
    return target


# --- templates ---------------------------------------------------------------------------


def render(text: str, env: dict[str, str], left: str = "{{", right: str = "}}",
           name: str = "template") -> str:
    """Go template text with Nomad's environment subset: ``{{ env "NAME" }}``, string
    literals, comments and ``{{-``/``-}}`` trimming. Anything else is an error that
    names the line, as Go's text/template does."""
    out, pos = [], 0
    pattern = re.compile(re.escape(left) + r"(-\s)?(.*?)(\s-)?" + re.escape(right), re.S)
    for m in pattern.finditer(text):
        chunk = text[pos:m.start()]
        if m.group(1):
            chunk = chunk.rstrip()
        out.append(chunk)
        out.append(_action(m.group(2).strip(), env, name, text.count("\n", 0, m.start()) + 1))
        pos = m.end()
        if m.group(3):
            while pos < len(text) and text[pos].isspace():
                pos += 1
    out.append(text[pos:])
    return "".join(out)


_STRING = r'"((?:[^"\\]|\\.)*)"'


def _action(action: str, env: dict[str, str], name: str, line: int) -> str:
    if action.startswith("/*") and action.endswith("*/"):
        return ""
    m = re.fullmatch(r"env\s+" + _STRING, action)
    if m:
        return env.get(bytes(m.group(1), "utf-8").decode("unicode_escape"), "")
    m = re.fullmatch(_STRING, action)
    if m:
        return bytes(m.group(1), "utf-8").decode("unicode_escape")
    word = action.split()[0] if action.split() else action
    raise PrestartError(f"template: {name}:{line}: function {word!r} not defined "
                        f"(Caravan renders env \"NAME\" and string literals)")


def render_template(tmpl: Template, task_dir: str, env: dict[str, str]) -> dict[str, str]:
    """Render one template into its DestPath; return the variables it exports when
    ``Envvars`` is set."""
    if tmpl.EmbeddedTmpl:
        text = tmpl.EmbeddedTmpl
    elif tmpl.SourcePath:
        src = inside(task_dir, tmpl.SourcePath, "template source")
        try:
            with open(src) as f:
                text = f.read()
        except OSError as exc:
            raise PrestartError(f"template source {tmpl.SourcePath!r}: {exc.strerror}") from None
    else:
        text = ""
    rendered = render(text, env, tmpl.LeftDelim or "{{", tmpl.RightDelim or "}}",
                      name=tmpl.DestPath or "template")
    if not tmpl.DestPath:
        raise PrestartError("template: missing destination path")
    dest = inside(task_dir, tmpl.DestPath, "template destination")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "w") as f:
        f.write(rendered)
    try:
        os.chmod(dest, int(tmpl.Perms or "0644", 8))
    except ValueError:
        raise PrestartError(f"template {tmpl.DestPath!r}: bad perms {tmpl.Perms!r}") from None
    if not tmpl.Envvars:
        return {}
    exported = {}
    for raw in rendered.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise PrestartError(f"template {tmpl.DestPath!r}: line {raw!r} is not KEY=VALUE")
        exported[key.strip()] = value.strip().strip('"')
    return exported
