"""Run the notebooks with papermill, and read back what they recorded.

``python -m helpers.walkthrough`` (``make walkthrough``) executes every numbered notebook
in order, in place, with its own parameters, and prints where each one is and how long it
took. Tests call ``run_notebook`` with small parameters and ``notebook_results`` to assert
on the values a notebook published with ``show_results``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import config

RESULTS_MIME = "application/vnd.chroma-milvus-kit.results+json"


def notebooks(folder: Path = config.NOTEBOOKS_DIR) -> list[Path]:
    """The kit's notebooks in reading order (``NN_topic.ipynb``)."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def run_notebook(path: Path, output: Path | None = None, parameters: dict[str, Any] | None = None,
                 progress: bool = False, timeout: int = 1800) -> Path:
    """Execute ``path`` (in its own folder) into ``output`` (default: in place)."""
    import papermill

    output = output or path
    papermill.execute_notebook(str(path), str(output), parameters=parameters or {},
                               cwd=str(path.parent), kernel_name="python3",
                               progress_bar=progress, execution_timeout=timeout)
    return output


def show_results(values: dict[str, Any]) -> None:
    """Show a notebook's key results as a table and record them for the tests to read."""
    import pandas as pd
    from IPython.display import display

    table = pd.DataFrame({"value": [str(v) for v in values.values()]}, index=list(values))
    display({RESULTS_MIME: json.loads(json.dumps(values, default=str)),
             "text/plain": table.to_string(), "text/html": table.to_html()}, raw=True)


def notebook_results(path: Path) -> dict[str, Any]:
    """Every value the executed notebook at ``path`` recorded with ``show_results``."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    found: dict[str, Any] = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            found.update(out.get("data", {}).get(RESULTS_MIME, {}))
    return found


def main(argv: list[str] | None = None) -> int:
    """Run every notebook (or those named) in order and report the time each took."""
    parser = argparse.ArgumentParser(prog="python -m helpers.walkthrough", description=__doc__)
    parser.add_argument("only", nargs="*", help="notebook numbers to run, e.g. 00 03 (default: all)")
    args = parser.parse_args(argv)
    chosen = [p for p in notebooks() if not args.only or p.name[:2] in args.only]
    if not chosen:
        print(f"No notebook matches {args.only}: names start with two digits, e.g. 00.",
              file=sys.stderr)
        return 2
    timings = []
    for path in chosen:
        print(f"▶ {path.relative_to(config.ROOT)} …", flush=True)
        start = time.perf_counter()
        try:
            run_notebook(path, progress=True)
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell
            print(f"✗ {path.name} failed: {exc}\n  The partly executed notebook is at {path}.",
                  file=sys.stderr)
            return 1
        timings.append((path, time.perf_counter() - start))
        print(f"✓ {path.relative_to(config.ROOT)} in {timings[-1][1]:.0f} s", flush=True)
    print("\nExecuted notebooks (outputs written back in place):")
    for path, seconds in timings:
        print(f"  {path}  {seconds:7.1f} s")
    print(f"  total {sum(s for _, s in timings):.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
