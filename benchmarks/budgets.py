"""Budgets on a default digits run: a loose, a tight and an impossible one, then the verified
export of the tight answer (re-measured vs recorded).

    python benchmarks/budgets.py        # writes benchmarks/results/budgets.md
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, machine

BUDGETS = {
    "loose": ["--max-size", "400KB", "--min-accuracy", "0.95"],
    "tight": ["--max-size", "80KB", "--max-latency", "0.035ms", "--min-accuracy", "0.98"],
    "impossible": ["--max-size", "5KB", "--min-accuracy", "0.99"],
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
    lines = ["# Budgets on a default digits run", "", f"Machine: {machine()}", "",
             "Search: `autocompress search --task digits --out RUN` (the README's default).", ""]
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
