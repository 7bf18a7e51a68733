"""Running ``odradek verify`` as a user does, for the verifier's tests: a child process, its JSON result."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.odradek import child_env


@dataclass
class Outcome:
    code: int
    result: dict | None
    stdout: str
    stderr: str

    def row(self, name: str) -> dict:
        assert self.result is not None, self.stderr
        for r in self.result["rows"]:
            if r["name"] == name:
                return r
        raise KeyError(name)

    def verdict(self, name: str) -> dict:
        return self.row(name)["verdict"]

    def explain(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout[-6000:]}\n--- stderr\n{self.stderr[-4000:]}"


def run_verify(tmp_path: Path, *args: str, timeout: float = 600.0, json_out: bool = True) -> Outcome:
    out = tmp_path / "result.json"
    argv = [sys.executable, "-m", "odradek", "verify", "--quiet", *args]
    if json_out:
        argv += ["--json", str(out)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=child_env(), cwd=tmp_path
    )
    result = json.loads(out.read_text()) if json_out and out.exists() else None
    return Outcome(proc.returncode, result, proc.stdout, proc.stderr)
