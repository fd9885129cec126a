#!/usr/bin/env python3
"""Builds src/protobuf/schema.txt: the protobuf field numbers of the Kubernetes types kubectl
sends with Content-Type application/vnd.kubernetes.protobuf (typed `kubectl create ...`).

Usage: proto_schema.py PROTO_ROOT [GO_TYPES_ROOT] > src/protobuf/schema.txt
PROTO_ROOT holds Kubernetes' generated.proto files laid out by package, e.g.
PROTO_ROOT/core/v1/generated.proto (k8s.io/api) and PROTO_ROOT/pkg/apis/meta/v1/generated.proto
(k8s.io/apimachinery). Output lines: `Message` then `  name number kind type` (kind s|r|m|i|p: singular, repeated, map, inlined, pointer).
"""
import os
import re
import sys

root = sys.argv[1]
# Go pointer scalars (*int32, *bool, *string...): a zero value on the wire was set on purpose.
pointers = set()
if len(sys.argv) > 2:
    for dirpath, _, files in os.walk(sys.argv[2]):
        for f in files:
            if f != "types.go":
                continue
            go = open(os.path.join(dirpath, f)).read()
            for st in re.finditer(r"^type (\w+) struct \{(.*?)^\}", go, re.M | re.S):
                for fm in re.finditer(r"^\s+\w+\s+\*(?:int32|int64|bool|string|float64|\w+)\s+`.*?protobuf:\"[^\"]*name=(\w+)", st.group(2), re.M):
                    pointers.add((st.group(1), fm.group(1)))
messages = {}
for dirpath, _, files in os.walk(root):
    for f in files:
        if f != "generated.proto":
            continue
        text = open(os.path.join(dirpath, f)).read()
        pkg = re.search(r"^package ([\w.]+);", text, re.M).group(1)
        for m in re.finditer(r"^message (\w+) \{(.*?)^\}", text, re.M | re.S):
            fields = []
            for line in m.group(2).splitlines():
                line = line.strip()
                fm = re.match(r"(optional|repeated) ([\w.]+) (\w+) = (\d+);", line)
                mm = re.match(r"map<(\w+), ([\w.]+)> (\w+) = (\d+);", line)
                if fm:
                    kind = "r" if fm.group(1) == "repeated" else "s"
                    fields.append((fm.group(3), fm.group(4), kind, fm.group(2)))
                elif mm:
                    fields.append((mm.group(3), mm.group(4), "m", mm.group(2)))
            messages[pkg + "." + m.group(1)] = (pkg, fields)

INLINE = {"volumeSource", "persistentVolumeSource", "localObjectReference", "handler", "ephemeralContainerCommon", "ingressRuleValue"}
SCALARS = {"string", "int32", "int64", "bool", "bytes", "double", "float", "uint32", "uint64"}

def qualify(pkg, t):
    t = t.lstrip(".")
    if t in SCALARS or t.startswith("k8s.io."):
        return t
    return pkg + "." + t

# Every top-level kind (a message with ObjectMeta metadata), plus the option types clients send.
ROOTS = [
    name for name, (_, fields) in messages.items()
    if any(f[0] == "metadata" and f[3].lstrip(".").endswith("meta.v1.ObjectMeta") for f in fields)
    and not name.endswith("List")
] + ["k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"]
seen = []
stack = list(ROOTS)
while stack:
    name = stack.pop()
    if name in seen or name not in messages:
        continue
    seen.append(name)
    pkg, fields = messages[name]
    for _, _, _, t in fields:
        q = qualify(pkg, t)
        if q not in SCALARS:
            stack.append(q)
for name in sorted(seen):
    pkg, fields = messages[name]
    print(name)
    for fname, num, kind, t in fields:
        # Go embeds these structs with `json:""`: their fields appear in the parent object.
        if fname in INLINE and kind == "s":
            kind = "i"
        elif kind == "s" and (name.rsplit(".", 1)[1], fname) in pointers:
            kind = "p"
        print(f"  {fname} {num} {kind} {qualify(pkg, t)}")
