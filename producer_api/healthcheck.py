"""`python -m producer_api.healthcheck`: exit 0 if the API on this host answers /healthz."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from producer_api.settings import ProducerSettings


def main() -> int:
    url = f"http://127.0.0.1:{ProducerSettings().api_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status = int(response.status)
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
