"""The Kafka jars, fetched from Maven Central once and cached.

Two sets: Kafka 3.9 with ZooKeeper (the default stack and tests: the last line with
ZooKeeper mode) and Kafka 4.x in KRaft mode (the production-shaped stack and the
integration tier on Kafka 4). Each is a small Maven project beside this file whose
runtime classpath `mvn dependency:copy-dependencies` copies into a versioned folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "3.9.2"
KAFKA4_VERSION = "4.1.2"
_COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class JarSet:
    version: str
    pom: Path
    # A variable naming a folder to use instead of the cache (a machine without Maven).
    override_variable: str
    folder_prefix: str

    def libs_dir(self) -> Path:
        """Where the jars live: the override, or a versioned folder in the user cache."""
        override = os.environ.get(self.override_variable)
        if override:
            return Path(override)
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return cache / "memtelemetry" / f"{self.folder_prefix}-{self.version}"


KAFKA3 = JarSet(KAFKA_VERSION, Path(__file__).with_name("pom.xml"), "MEMTEL_KAFKA_LIBS", "kafka")
KAFKA4 = JarSet(
    KAFKA4_VERSION, Path(__file__).with_name("pom-kafka4.xml"), "MEMTEL_KAFKA4_LIBS", "kafka"
)


def kafka_libs_dir() -> Path:
    return KAFKA3.libs_dir()


def ensure_kafka_libs() -> Path:
    """The Kafka 3.9 jars (with ZooKeeper)."""
    return ensure_libs(KAFKA3)


def ensure_kafka4_libs() -> Path:
    """The Kafka 4.x jars (KRaft only)."""
    return ensure_libs(KAFKA4)


def ensure_libs(jars: JarSet) -> Path:
    """Return the folder of jars, copying them out of Maven's repository if needed.

    The copy goes to a temporary folder first and is renamed into place, so an
    interrupted download never leaves a half-filled folder that looks complete.
    """
    target = jars.libs_dir()
    if (target / _COMPLETE_MARKER).exists():
        return target
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch the Kafka jars; run `make bootstrap`")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="kafka-libs-", dir=target.parent))
    try:
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(jars.pom),
                f"-Dkafka.version={jars.version}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            check=True,
        )
        (staging / _COMPLETE_MARKER).write_text(jars.version + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
