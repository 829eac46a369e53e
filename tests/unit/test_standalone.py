"""The repository stands alone: no tracked file names a path outside it, and every file a
document links or names (a Markdown link, or an inline-code path such as
``server/raft.py``) exists in the repository."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Built from pieces so this file does not name them itself.
OUTSIDE = re.compile("|".join([
    re.escape("../" + "shared"),
    r"(?<![\w.~-])/" + "work/",
    r"(?<![\w.~-])/" + "home/",
    r"(?<![\w.~-])/" + "root/",
    r"\bshared/" + "(?:reference|seed|bench|fixtures|nomad-openapi)/",
]))

# Top-level folders whose paths a document may name in inline code.
REPO_DIRS = ("fsm", "scheduler", "client", "server", "proto", "tests", "bench", "docs",
             "examples", "caravan", ".ci")
_DIRS = "|".join(re.escape(d) for d in REPO_DIRS)
CODE_PATH = re.compile(rf"`((?:{_DIRS})/[\w./*-]*)`")
MD_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
TOP_DOC = re.compile(r"`((?:[\w-]+/)*[A-Z][\w-]*\.md)`")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        # not a git checkout (an unpacked sdist, say): every file but caches and builds
        skip = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".cache",
                "build", "dist", ".venv", "venv"}
        return [q for q in ROOT.rglob("*") if q.is_file()
                and not skip.intersection(q.relative_to(ROOT).parts)
                and not q.name.endswith((".pyc", ".egg-info"))
                and ".egg-info" not in str(q.relative_to(ROOT))]
    return [ROOT / p for p in out.decode().split("\0") if p]


def text_of(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def documents() -> list[Path]:
    return [p for p in tracked_files() if p.suffix == ".md"]


def exists(doc: Path, target: str) -> bool:
    """``target`` names something in the repository, relative to the root or to ``doc``."""
    target = target.split("#", 1)[0].rstrip("/")
    if not target:
        return True
    for base in (ROOT, doc.parent):
        if any(ch in target for ch in "*?["):
            if any(base.glob(target)):
                return True
        elif (base / target).exists():
            return True
    return False


def test_no_tracked_file_names_a_path_outside_the_repository():
    found = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not found, "paths outside the repository:\n" + "\n".join(found)


def test_markdown_links_resolve():
    broken = []
    for doc in documents():
        for target in MD_LINK.findall(doc.read_text()):
            if re.match(r"[a-z][a-z+.-]*:", target):  # http:, https:, mailto:
                continue
            if not exists(doc, target):
                broken.append(f"{doc.relative_to(ROOT)}: ({target})")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_paths_named_in_documents_exist():
    missing = []
    for doc in documents():
        text = doc.read_text()
        for target in CODE_PATH.findall(text) + TOP_DOC.findall(text):
            if not exists(doc, target):
                missing.append(f"{doc.relative_to(ROOT)}: `{target}`")
    assert not missing, "documents name files that do not exist:\n" + "\n".join(missing)


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The patterns are not vacuous: each finds a planted example."""
    assert OUTSIDE.search("see ../" + "shared/x.txt")
    assert OUTSIDE.search('Path("/' + 'work/shared/x")')
    assert OUTSIDE.search("cd /" + "home/me")
    assert OUTSIDE.search("(§4.1 of `shared/" + "reference/pysyncobj.md`)")
    assert not OUTSIDE.search("tests/fixtures/work/x and https://example.com/home/")
    doc = tmp_path / "x.md"
    assert MD_LINK.findall("[a](docs/nope.md) and [b](https://x.y/z)") == ["docs/nope.md", "https://x.y/z"]
    assert not exists(doc, "docs/no-such-file.md")
    assert exists(doc, "server/raft.py") and exists(doc, "tests/test_client*.py")
    assert CODE_PATH.findall("the `server/raft.py` module and `fsm/`") == ["server/raft.py", "fsm/"]
