"""Local JSON references (``#/components/schemas/Pet``): resolved, inlined to a bounded depth;
external ones found (they are not followed)."""

from __future__ import annotations

from typing import Any, Final

#: How many ``$ref``s deep a schema is inlined; deeper (or recursive) ones become a plain type.
MAX_REF_DEPTH: Final = 6


def resolve_pointer(root: Any, ref: str) -> Any:
    """What a local JSON reference (``#/components/schemas/Pet``) points to, or None."""
    if not ref.startswith("#"):
        return None
    node = root
    for raw in ref[1:].split("/")[1:] if ref not in ("#", "#/") else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def inline_refs(node: Any, root: Any, seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every local ``$ref`` replaced by a copy of its target (siblings of the
    ``$ref`` win). A recursive reference, or one deeper than :data:`MAX_REF_DEPTH`, becomes the
    target's bare type, so the result is always finite. An external one stays as it is."""
    if isinstance(node, list):
        return [inline_refs(item, root, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    rest = {k: inline_refs(v, root, seen) for k, v in node.items() if k != "$ref"}
    if not isinstance(ref, str):
        return rest
    target = resolve_pointer(root, ref)
    if not isinstance(target, dict):
        return node if not ref.startswith("#") else (rest or {"type": "object"})
    if ref in seen or len(seen) >= MAX_REF_DEPTH:
        cut: dict[str, Any] = {"type": target.get("type", "object")}
        if isinstance(target.get("description"), str):
            cut["description"] = target["description"]
        return {**cut, **rest}
    return {**inline_refs(target, root, (*seen, ref)), **rest}


def deref(node: Any, root: Any) -> Any:
    """A parameter/requestBody object that may itself be a ``$ref``."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 10:
        target = resolve_pointer(root, node["$ref"])
        if target is None:
            return node
        node, seen = target, seen + 1
    return node


def external_refs(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            out.add(ref)
        for value in node.values():
            external_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            external_refs(value, out)
    return out
