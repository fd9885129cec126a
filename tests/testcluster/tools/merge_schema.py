#!/usr/bin/env python3
"""Builds src/merge_schema.txt: how server-side apply merges the built-in types' lists and maps,
from the structured-merge-diff schemas the API server uses (generated from the OpenAPI
markers x-kubernetes-list-type, x-kubernetes-list-map-keys, x-kubernetes-map-type).

Usage: merge_schema.py INTERNAL_GO... > src/merge_schema.txt
INTERNAL_GO: client-go's applyconfigurations/internal/internal.go and
apiextensions-apiserver's pkg/client/applyconfiguration/internal/internal.go (their
`schemaYAML`). Needs PyYAML.

Output: a type line `TYPE [atomic]`, then its fields that are not plain scalars:
`  FIELD SHAPE ELEMENT` where SHAPE is `struct` (a named type), `atomic`, `set`,
`map:KEY,KEY` (a list keyed by those fields), `dict` or `atomic-dict` (a map of string
keys), and ELEMENT the named type of the value or list items, or `-` for scalars.
Only the types reachable through fields are kept; types with no such field are listed so
their atomicity is known.
"""
import re
import sys

import yaml

types = {}
for path in sys.argv[1:]:
    text = open(path).read()
    body = re.search(r"typed\.YAMLObject\(`(.*?)`\)", text, re.S).group(1)
    for t in yaml.safe_load(body)["types"]:
        types.setdefault(t["name"], t)


def shape(ty):
    """(SHAPE, ELEMENT) of a field's type, or None for scalars and untyped values."""
    if "namedType" in ty:
        name = ty["namedType"]
        if name == "__untyped_atomic_":
            return ("atomic", "-")
        # Scalars in disguise (Time, Quantity, IntOrString) have no fields to walk.
        return ("struct", name) if "map" in types.get(name, {}) else None
    if "list" in ty:
        lst = ty["list"]
        elem = lst.get("elementType", {}).get("namedType", "-")
        if "map" not in types.get(elem, {}):
            elem = "-"
        rel = lst.get("elementRelationship", "atomic")
        if rel == "associative":
            keys = lst.get("keys") or []
            return (f"map:{','.join(keys)}" if keys else "set", elem)
        return ("atomic", elem)
    if "map" in ty:
        m = ty["map"]
        elem = m.get("elementType", {}).get("namedType", "-")
        if "map" not in types.get(elem, {}):
            elem = "-"
        return ("atomic-dict" if m.get("elementRelationship") == "atomic" else "dict", elem)
    return None


for name in sorted(types):
    if name.startswith("__"):
        continue
    m = types[name].get("map")
    if m is None:
        continue
    atomic = " atomic" if m.get("elementRelationship") == "atomic" else ""
    print(f"{name}{atomic}")
    for f in m.get("fields", []):
        s = shape(f["type"])
        if s is not None:
            print(f"  {f['name']} {s[0]} {s[1]}")
