"""The type stubs of the native module (_native.pyi) name everything the module has: a function
or method added in Rust without its stub fails here."""

import ast

from bpfsim import _native
from _util import ROOT

STUBS = ROOT / "python" / "bpfsim" / "_native.pyi"


def _stubbed():
    tree = ast.parse(STUBS.read_text())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            top.update(t.id for t in targets if isinstance(t, ast.Name))
        if isinstance(node, ast.ClassDef):
            members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} | {
                n.target.id for n in node.body
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return top, members


def test_every_native_name_has_a_stub():
    top, members = _stubbed()
    public = {n for n in dir(_native) if not n.startswith("_")} | {"__version__"}
    assert public - top == set()
    for cls in ("Object", "RunResult", "PcapRun", "HelperCall"):
        native = {n for n in dir(getattr(_native, cls)) if not n.startswith("_")}
        assert native - members[cls] == set(), cls
