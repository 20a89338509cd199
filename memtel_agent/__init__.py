"""memtel-agent: reports this machine's memory, as `free` shows it, to the producer API."""
