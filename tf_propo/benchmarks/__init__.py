"""Benchmarks: scripts that print ratios measured in one run (never timed unit tests)."""

import json


def print_report(columns, cells, rows):
    """A Markdown table (`columns`, one list of formatted `cells` per row) and then, as the
    last stdout line, the JSON of the raw `rows` for scripts."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for line in cells:
        print("| " + " | ".join(str(c) for c in line) + " |")
    print(json.dumps(rows))
