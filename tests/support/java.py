"""The Java client programs of tests/java (Kafka 4.4's client), built once with Maven per version of their
sources, and the argv that runs one of them."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from support.deps import missing_dependency
from support.kafka import find_java

JAVA_DIR = Path(__file__).resolve().parents[1] / "java"


def _sources_digest() -> str:
    h = hashlib.sha256()
    for f in sorted([JAVA_DIR / "pom.xml", *JAVA_DIR.joinpath("src").rglob("*.java")]):
        h.update(f.relative_to(JAVA_DIR).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def java_main(main_class: str) -> list[str]:
    """The ``java -cp ...`` argv prefix that runs ``main_class`` of tests/java (built unless current)."""
    java = find_java()
    if java is None:
        missing_dependency("`java` (17+) not found", "needed for the Java client test")
    target = JAVA_DIR / "target"
    stamp = target / ".odradek-build-sha256"
    digest = _sources_digest()
    if not (
        stamp.is_file() and stamp.read_text().strip() == digest and (target / "eos-copier.jar").is_file()
    ):
        mvn = shutil.which("mvn")
        if mvn is None:
            missing_dependency("`mvn` not found", "needed to build tests/java")
        proc = subprocess.run(
            [mvn, "-q", "-B", "-f", str(JAVA_DIR / "pom.xml"), "package"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"mvn package failed:\n{(proc.stdout + proc.stderr)[-4000:]}"
        stamp.write_text(digest + "\n")
    cp = f"{target / 'eos-copier.jar'}:{target / 'deps'}/*"
    return [java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", cp, main_class]
