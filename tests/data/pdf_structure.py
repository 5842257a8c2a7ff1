"""What a PDF says about its own accessibility, read from the file (pikepdf, in the test venv):
the language, the PDF/UA identifier, heading levels in order, each list's shape, table header
cells and their scope, and on every page whether all text is tagged or an artifact (the page
footer). Prints one JSON object; the Rust tests (tests/api/documents.rs) judge it."""

import json
import sys

import pikepdf


def kids(node):
    k = node.get("/K")
    if k is None:
        return []
    return list(k) if isinstance(k, pikepdf.Array) else [k]


def elements(node):
    return [k for k in kids(node) if isinstance(k, pikepdf.Dictionary) and "/S" in k]


def attributes(node):
    found = {}
    a = node.get("/A")
    for entry in (list(a) if isinstance(a, pikepdf.Array) else [a] if a is not None else []):
        if isinstance(entry, pikepdf.Dictionary):
            for key, value in entry.items():
                found[str(key)] = str(value)
    return found


def walk(node, out):
    s = str(node.S)
    out["types"][s] = out["types"].get(s, 0) + 1
    if len(s) == 3 and s.startswith("/H") and s[2].isdigit():
        out["headings"].append(int(s[2]))
    if s == "/L":
        for item in elements(node):
            shape = [str(k.S) for k in elements(item)]
            if str(item.S) != "/LI" or shape not in (["/Lbl", "/LBody"], ["/LBody"]):
                out["malformed_lists"].append([str(item.S)] + shape)
    if s == "/TH":
        out["th"] += 1
        if attributes(node).get("/Scope") not in ("/Column", "/Row", "/Both"):
            out["th_without_scope"] += 1
    for k in elements(node):
        walk(k, out)


def page_marks(page):
    """Text-showing operators on the page: inside tagged content, inside an artifact, or neither."""
    tagged = artifact = loose = 0
    stack = []
    for operands, op in pikepdf.parse_content_stream(page):
        op = str(op)
        if op in ("BDC", "BMC"):
            tag = str(operands[0]) if operands else ""
            props = operands[1] if op == "BDC" and len(operands) > 1 else None
            has_mcid = isinstance(props, pikepdf.Dictionary) and "/MCID" in props
            stack.append("artifact" if tag == "/Artifact" else "tagged" if has_mcid else "other")
        elif op == "EMC":
            if stack:
                stack.pop()
        elif op in ("Tj", "TJ", "'", '"'):
            if "artifact" in stack:
                artifact += 1
            elif "tagged" in stack:
                tagged += 1
            else:
                loose += 1
    return {"tagged": tagged, "artifact": artifact, "loose": loose}


def main():
    pdf = pikepdf.open(sys.argv[1])
    root = pdf.Root
    meta = pdf.open_metadata()
    part = next((v for k, v in meta.items() if k.endswith("}part") and "pdfua" in k), None)
    out = {
        "lang": str(root.get("/Lang")) if root.get("/Lang") is not None else None,
        "pdfua_part": part,
        "marked": bool(root.get("/MarkInfo", {}).get("/Marked", False)),
        "display_doc_title": bool(root.get("/ViewerPreferences", {}).get("/DisplayDocTitle", False)),
        "types": {},
        "headings": [],
        "malformed_lists": [],
        "th": 0,
        "th_without_scope": 0,
        "pages": [page_marks(p) for p in pdf.pages],
    }
    for top in elements(root.StructTreeRoot) if "/StructTreeRoot" in root else []:
        walk(top, out)
    print(json.dumps(out))


main()
