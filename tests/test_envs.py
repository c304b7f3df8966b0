"""Every rule's conda environment holds what its script imports, and the pins agree with pyproject.toml.

Users with conda run `snakemake --sdm conda`: a rule whose env lacks a package its script needs fails
there and nowhere else (this machine has no conda). The imports a script needs are read from the code:
its own imports, the module-level imports of every culturespa module they reach (transitively), and the
imports inside the package functions the script calls (heavy libraries are imported lazily there).
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PACKAGE = REPO / "culturespa"
# import name -> distribution name, where they differ
DISTRIBUTION = {"yaml": "pyyaml", "matplotlib": "matplotlib", "mpl_toolkits": "matplotlib"}
# conda names that provide a distribution
PROVIDES = {"matplotlib-base": "matplotlib", "snakemake-minimal": "snakemake"}
# pandas features backed by optional packages, found by the attribute a reached function uses
OPTIONAL_BACKENDS = {"to_markdown": "tabulate", "style": "jinja2"}


def _normal(name: str) -> str:
    return re.split(r"[ =<>!~\[]", name.strip(), maxsplit=1)[0].lower().replace("_", "-")


def env_packages(path: Path) -> set[str]:
    spec = yaml.safe_load(path.read_text())
    names = set()
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            names |= {_normal(d) for d in dep.get("pip", [])}
        else:
            names.add(_normal(dep))
    return {PROVIDES.get(n, n) for n in names}


def rule_scripts() -> list[tuple[str, str, str]]:
    """(rule file, conda env, script) for every rule (also those a loop defines)."""
    found = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^\s*rule\b", smk.read_text(), flags=re.M)[1:]:
            conda = re.search(r'conda:\s*\n\s*"\.\./(envs/[^"]+)"', block)
            script = re.search(r'script:\s*\n\s*"\.\./(scripts/[^"]+)"', block)
            assert conda and script, f"{smk.name}: a rule without conda: or script: ({block[:60]!r})"
            found.append((smk.name, conda.group(1), script.group(1)))
    return found


def _optional(nodes) -> set[int]:
    """ids of import nodes inside ``try: ... except ImportError`` (optional imports)."""
    out = set()
    for node in nodes:
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return out


def _imports(nodes) -> tuple[set[str], set[str]]:
    """(third-party top-level names, culturespa modules) imported by these AST nodes, optional
    imports (``try: import x`` / ``except ImportError``) left out."""
    nodes = list(nodes)
    skip = _optional(nodes)
    third, ours = set(), set()
    for node in nodes:
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                (ours.add(alias.name.split(".")[1]) if top == "culturespa" and "." in alias.name
                 else third.add(top) if top != "culturespa" else None)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the package
                base = (node.module or "").split(".")[0]
                if base:
                    ours.add(base)
                else:
                    ours |= {a.name for a in node.names}
            elif node.module and node.module.split(".")[0] == "culturespa":
                parts = node.module.split(".")
                ours |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
            elif node.module:
                third.add(node.module.split(".")[0])
    return third, ours


def _module_path(name: str) -> Path:
    path = PACKAGE / f"{name}.py"
    return path if path.is_file() else PACKAGE / name / "__init__.py"


def _module_level(tree: ast.Module):
    """The nodes that run on import: everything but function bodies."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


class _Package:
    """The package's functions and classes, and what each one imports and references.

    A function needs the third-party packages imported in its body and at the top of its module, and
    what every package function or class it references needs (a referenced class brings all its
    methods). References are resolved through the module's own definitions and its imports (module or
    function level); calls on other objects are not followed, except through their class when the
    class itself is referenced somewhere on the way."""

    def __init__(self):
        self.modules = {p.stem for p in PACKAGE.glob("*.py")}
        self.trees = {m: ast.parse(_module_path(m).read_text()) for m in self.modules}
        self.defs = {}  # (module, name) -> node (top-level function or class)
        for m, tree in self.trees.items():
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self.defs[(m, node.name)] = node

    def _bindings(self, module: str, nodes) -> dict[str, tuple[str, str | None]]:
        """name -> (package module, attribute or None for the module itself)."""
        out = {}
        for node in nodes:
            if isinstance(node, ast.ImportFrom):
                parts = (node.module or "").split(".")
                if node.level:
                    target = parts[0] if parts[0] else None
                elif parts[0] == "culturespa":
                    target = parts[1] if len(parts) > 1 else None
                else:
                    continue
                for a in node.names:
                    if target is None:
                        out[a.asname or a.name] = (a.name, None)
                    else:
                        out[a.asname or a.name] = (target, a.name)
        return out

    def needs(self, start: set[tuple[str, str]], modules: set[str]) -> set[str]:
        third: set[str] = set()
        seen_mod: set[str] = set()
        todo_mod = set(modules)
        seen_def: set[tuple[str, str]] = set()
        todo_def = set(start)
        while todo_mod or todo_def:
            while todo_mod:
                m = todo_mod.pop()
                if m in seen_mod or m not in self.trees:
                    continue
                seen_mod.add(m)
                level = list(_module_level(self.trees[m]))
                t, o = _imports(level)
                third |= t
                todo_mod |= o
            while todo_def:
                key = todo_def.pop()
                if key in seen_def or key not in self.defs:
                    continue
                seen_def.add(key)
                m, _ = key
                todo_mod.add(m)
                node = self.defs[key]
                body = list(ast.walk(node))
                t, o = _imports(body)
                third |= t
                todo_mod |= o
                names = {**self._bindings(m, _module_level(self.trees[m])), **self._bindings(m, body)}
                for ref in body:
                    if isinstance(ref, ast.Attribute) and ref.attr in OPTIONAL_BACKENDS:
                        third.add(OPTIONAL_BACKENDS[ref.attr])
                    if isinstance(ref, ast.List):  # [python, "-m", "snakemake", ...]: a module run as a program
                        items = [e.value if isinstance(e, ast.Constant) else None for e in ref.elts]
                        run = {items[i + 1].split(".")[0] for i, x in enumerate(items[:-1]) if x == "-m" and items[i + 1]}
                        third |= run - {"culturespa"}  # the package running itself (the job server)
                    if isinstance(ref, ast.Name):
                        if (m, ref.id) in self.defs:
                            todo_def.add((m, ref.id))
                        elif ref.id in names and names[ref.id][1] is not None:
                            todo_def.add(names[ref.id])
                    elif isinstance(ref, ast.Attribute) and isinstance(ref.value, ast.Name):
                        bound = names.get(ref.value.id)
                        if bound and bound[1] is None:  # module.attr
                            todo_def.add((bound[0], ref.attr))
        return third


@functools.lru_cache(maxsize=1)
def _package() -> _Package:
    return _Package()


def needed_by(script: Path) -> set[str]:
    """Third-party top-level import names the script needs."""
    tree = ast.parse(script.read_text())
    third, modules = _imports(ast.walk(tree))
    start = {(node.module.split(".")[1], a.name) for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("culturespa.")
             for a in node.names}
    third |= _package().needs(start, modules)
    return {n for n in third if n not in sys.stdlib_module_names} - {"__future__"}


@pytest.mark.parametrize("rule_file,env,script", rule_scripts())
def test_rule_env_covers_its_script(rule_file, env, script):
    have = env_packages(REPO / env)
    missing = []
    for name in sorted(needed_by(REPO / script)):
        dist = DISTRIBUTION.get(name, name).replace("_", "-")
        if dist in have:
            continue
        missing.append(dist)
    assert not missing, f"{rule_file}: {script} needs {missing}, which {env} does not list"


def test_env_pins_match_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = {}
    for dep in deps:
        name, _, version = dep.partition("==")
        assert version, f"pyproject.toml: {dep} is not pinned to one version"
        pinned[_normal(name)] = version
    for env in sorted((REPO / "envs").glob("*.yaml")):
        spec = yaml.safe_load(env.read_text())
        for dep in spec["dependencies"]:
            for entry in dep.get("pip", []) if isinstance(dep, dict) else [dep]:
                name = PROVIDES.get(_normal(entry), _normal(entry))
                version = re.split(r"==|=", entry.replace(" ", ""), maxsplit=1)[1] if "=" in entry else None
                if name in pinned:
                    assert version == pinned[name], f"{env.name}: {entry} vs pyproject {name}=={pinned[name]}"
                elif name not in ("python", "pip"):
                    pytest.fail(f"{env.name}: {entry} is not a dependency in pyproject.toml")


def test_a_missing_package_is_caught(tmp_path):
    """The check can fail: a script importing seaborn is not covered by an env without it."""
    script = tmp_path / "s.py"
    script.write_text("import seaborn\nfrom culturespa.scoring import score_variant_files\n")
    needed = needed_by(script)
    assert {"seaborn", "pandas", "numpy", "scipy"} <= needed
    env = tmp_path / "env.yaml"
    env.write_text("dependencies:\n  - python =3.11\n  - pandas =3.1.1\n")
    assert "seaborn" not in env_packages(env)
