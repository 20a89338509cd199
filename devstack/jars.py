"""The Kafka and ZooKeeper jars, fetched from Maven Central once and cached."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

KAFKA_VERSION = "3.9.2"
_POM = Path(__file__).with_name("pom.xml")
_COMPLETE_MARKER = ".complete"


def kafka_libs_dir() -> Path:
    """Where the jars live: $MEMTEL_KAFKA_LIBS, or a versioned folder in the user cache."""
    override = os.environ.get("MEMTEL_KAFKA_LIBS")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "memtelemetry" / f"kafka-{KAFKA_VERSION}"


def ensure_kafka_libs() -> Path:
    """Return the folder of jars, copying them out of Maven's repository if needed.

    The copy goes to a temporary folder first and is renamed into place, so an
    interrupted download never leaves a half-filled folder that looks complete.
    """
    target = kafka_libs_dir()
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
                str(_POM),
                f"-Dkafka.version={KAFKA_VERSION}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            check=True,
        )
        (staging / _COMPLETE_MARKER).write_text(KAFKA_VERSION + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
