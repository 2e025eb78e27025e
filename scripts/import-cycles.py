#!/usr/bin/env python3
"""Import circles between the files of a crate.

File A depends on file B when A names `crate::...` (or `super::...`, or a child module's
items) resolving to B; a parent's re-exports (`pub use child::X`) do not count, nor do test
modules. Prints each circle and exits 1 if there is one: dependencies must run one way
(docs/architecture.md). Usage: scripts/import-cycles.py DIR... (each a crate's src/).
"""
import os,re,sys
def circles(root):
    files={}
    for d,_,fs in os.walk(root):
        for f in fs:
            if f.endswith('.rs'):
                p=os.path.join(d,f); rel=os.path.relpath(p,root)
                mod=rel[:-3].replace(os.sep,'::')
                if mod.endswith('::mod'): mod=mod[:-5]
                if mod in ('lib','main'): mod=''
                files[mod]=p
    def resolve(path):
        parts=path.split('::')
        for n in range(len(parts),0,-1):
            m='::'.join(parts[:n])
            if m in files: return m
        return ''
    edges={m:set() for m in files}
    for m,p in files.items():
        src=open(p).read()
        # strip test modules roughly
        i=src.find('#[cfg(test)]\nmod tests')
        if i>=0: src=src[:i]
        src=re.sub(r'//.*','',src)
        cur=m.split('::') if m else []
        for u in re.findall(r'crate::([A-Za-z_][A-Za-z0-9_:]*)',src):
            t=resolve(u.rstrip(':'))
            if t!=m and t!='': edges[m].add(t)
        for u in re.findall(r'\buse super::([A-Za-z_][A-Za-z0-9_:{]*)',src):
            base=cur[:-1]
            t=resolve('::'.join(base+[u.split('{')[0].rstrip(':')]))
            if t and t!=m: edges[m].add(t)
        for child in re.findall(r'^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_0-9]+)\s*;',src,re.M):
            cm='::'.join(cur+[child])
            # Re-exports (`pub use child::X`) are the parent's face, not a use of the child.
            body=re.sub(r'^\s*pub(?:\([a-z]+\))?\s+use\s+[^;]*;','',src,flags=re.M)
            if cm in files and re.search(r'\b'+child+r'::',body): edges[m].add(cm)
        # use crate::{a, b::c}
        for grp in re.findall(r'use crate::\{([^;]*)\}',src,re.S):
            for item in re.split(r',\s*',grp):
                item=item.strip().split('::{')[0].split(' ')[0]
                if item:
                    t=resolve(item)
                    if t and t!=m: edges[m].add(t)
    # tarjan
    idx={};low={};st=[];on=set();out=[];c=[0]
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in edges[v]:
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v: break
            if len(comp)>1: out.append(comp)
    sys.setrecursionlimit(10000)
    for v in files:
        if v not in idx: sc(v)

    return out, edges


def main():
    bad = False
    for root in sys.argv[1:]:
        out, edges = circles(root)
        for comp in out:
            bad = True
            print(f"{root}: " + " <-> ".join(sorted(comp)))
            for a in sorted(comp):
                print("   ", a, "->", sorted(x for x in edges[a] if x in comp))
        if not out:
            print(f"{root}: no import circles")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
