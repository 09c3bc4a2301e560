"""Budgets on a default digits run: a loose, a tight and an impossible one, then the verified
export of the tight answer (re-measured vs recorded).

    python benchmarks/budgets.py        # writes benchmarks/results/budgets.md
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, machine

import json


def budgets(teacher: dict) -> dict[str, list[str]]:
    """Budgets relative to the teacher as measured in this run (latency drifts on a shared VM)."""
    size, latency, acc = teacher["size_bytes"], teacher["latency_ms"], teacher["accuracy"]
    return {
        "loose": ["--max-size", f"{size // 2}B", "--min-accuracy", f"{acc - 0.05:.4f}"],
        "tight": ["--max-size", f"{size // 8}B", "--max-latency", f"{latency / 1.5 * 1000:.1f}us",
                  "--min-accuracy", f"{acc - 0.01:.4f}"],
        "impossible": ["--max-size", f"{size // 200}B", "--min-accuracy", f"{min(acc + 0.002, 1.0):.4f}"],
    }


def sh(args: list[str]) -> tuple[int, str]:
    proc = subprocess.run(args, capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="autocompress-budgets-"))
    run = str(work / "run")
    code, out = sh(["autocompress", "search", "--task", "digits", "--out", run])
    if code:
        print(out)
        return 1
    BUDGETS = budgets(json.loads((Path(run) / "run.json").read_text())["teacher"])
    lines = ["# Budgets on a default digits run", "", f"Machine: {machine()}", "",
             "Search: `autocompress search --task digits --out RUN` (the README's default). Budgets are set "
             "relative to the teacher measured in the run: loose = half its size and -5 points; tight = 1/8 of "
             "its size, 1.5x faster, -1 point; impossible = 1/200 of its size at +0.2 points.", ""]
    for name, flags in BUDGETS.items():
        cmd = ["autocompress", "best", run, *flags]
        code, out = sh(cmd)
        lines += [f"## {name}: `autocompress best RUN {' '.join(flags)}` (exit code {code})", "", "```",
                  out.replace(run, "RUN"), "```", ""]
    cmd = ["autocompress", "best", run, *BUDGETS["tight"], "--export", str(work / "shipped")]
    code, out = sh(cmd)
    lines += [f"## export of the tight answer: `autocompress best RUN {' '.join(BUDGETS['tight'])} --export DIR` "
              f"(exit code {code})", "", "```", out.replace(run, "RUN").replace(str(work / "shipped"), "DIR"),
              "```", ""]
    card = work / "shipped" / "MODEL_CARD.md"
    if card.exists():
        lines += ["## Its MODEL_CARD.md", "", card.read_text()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "budgets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
