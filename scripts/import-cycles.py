#!/usr/bin/env python3
"""Import circles between the files of a crate.

File A depends on file B when A names `crate::...` or `super::...` items resolving to B, or
uses a child module's items; a parent's re-exports (`pub use child::X`) do not count, nor
do test modules. Prints each circle and exits 1 if there is one: dependencies must run one
way (docs/architecture.md). Usage: scripts/import-cycles.py DIR... (each a crate's src/).
"""
import os
import re
import sys


def modules(root):
    """Module path (`a::b`, `` for the crate root) -> file."""
    files = {}
    for d, _, names in os.walk(root):
        for f in names:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(d, f)
            mod = os.path.relpath(p, root)[:-3].replace(os.sep, "::")
            if mod.endswith("::mod"):
                mod = mod[:-5]
            if mod in ("lib", "main"):
                mod = ""
            files[mod] = p
    return files


def items(group):
    """The first path segment of each item of a `{a, b::c, d as e}` import group."""
    for item in re.split(r",\s*", group):
        item = item.strip().split("::{")[0].split(" ")[0]
        if item and item != "self":
            yield item


def dependencies(files):
    def resolve(path):
        parts = path.split("::")
        for n in range(len(parts), 0, -1):
            m = "::".join(parts[:n])
            if m in files:
                return m
        return ""

    edges = {m: set() for m in files}
    for m, p in files.items():
        src = open(p).read()
        # Test modules are not the crate's code.
        t = re.search(r"#\[cfg\(test\)\]\n(pub(\(crate\))? )?mod tests\b", src)
        if t:
            src = src[: t.start()]
        src = re.sub(r"//.*", "", src)
        cur = m.split("::") if m else []
        # `super` of a file `a::b` is `a`; of `a/mod.rs` (module `a`) it is the root.
        parent = cur[:-1]

        def add(target):
            if target and target != m:
                edges[m].add(target)

        for u in re.findall(r"crate::([A-Za-z_][A-Za-z0-9_:]*)", src):
            add(resolve(u.rstrip(":")))
        for group in re.findall(r"use crate::\{([^;]*)\}", src, re.S):
            for item in items(group):
                add(resolve(item))
        for u in re.findall(r"\bsuper::([A-Za-z_][A-Za-z0-9_:]*)", src):
            add(resolve("::".join(parent + [u.rstrip(":")])))
        for group in re.findall(r"use super::\{([^;]*)\}", src, re.S):
            for item in items(group):
                add(resolve("::".join(parent + [item])))
        # Re-exports (`pub use child::X`) are the parent's face, not a use of the child.
        body = re.sub(r"^\s*pub(?:\([a-z]+\))?\s+use\s+[^;]*;", "", src, flags=re.M)
        for child in re.findall(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_0-9]+)\s*;", src, re.M):
            cm = "::".join(cur + [child])
            if cm in files and re.search(r"\b" + child + r"::", body):
                add(cm)
    return edges


def circles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    bad = False
    for root in sys.argv[1:]:
        edges = dependencies(modules(root))
        found = circles(edges)
        for comp in found:
            bad = True
            print(f"{root}: " + " <-> ".join(sorted(comp)))
            for a in sorted(comp):
                print("   ", a, "->", sorted(x for x in edges[a] if x in comp))
        if not found:
            print(f"{root}: no import circles")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
