"""`python -m benchmarks`: see benchmarks/runner.py."""

from benchmarks.runner import main

main()
