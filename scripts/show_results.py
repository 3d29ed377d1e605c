"""Pretty-prints results or dead letters (JSON Lines on stdin) for the demo."""

from __future__ import annotations

import sys

import orjson


def show_result(r: dict) -> str:  # type: ignore[type-arg]
    lines = [f"[{r['id']}] language={r.get('language')}"]
    s = r.get("sentiment")
    if s:
        lines.append(f"  sentiment: {s['label']} ({s['score']:.2f})")
    if r.get("keywords"):
        lines.append("  keywords:  " + ", ".join(k["text"] for k in r["keywords"][:6]))
    if r.get("summary"):
        lines.append(f"  summary:   {r['summary']}")
    if r.get("entities"):
        ents = ", ".join(f"{e['text']}/{e['type']}" for e in r["entities"][:8])
        lines.append(f"  entities:  {ents}")
    if r.get("errors"):
        lines.append("  errors:    " + "; ".join(f"{e['stage']}: {e['code']}" for e in r["errors"]))
    return "\n".join(lines)


def show_dead_letter(d: dict) -> str:  # type: ignore[type-arg]
    where = f"{d['source_topic']}[{d['source_partition']}]@{d['source_offset']}"
    return (
        f"[{d.get('event_id') or '-'}] {d['error_code']} at {d['stage']} ({where}): {d['message']}"
    )


def main() -> int:
    kind = sys.argv[1] if len(sys.argv) > 1 else "results"
    show = show_dead_letter if kind == "dead-letters" else show_result
    for line in sys.stdin.buffer:
        if line.strip():
            print(show(orjson.loads(line)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
