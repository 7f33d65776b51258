"""The floor: server CPU per request for pages that do no sign-in work, through the same gunicorn.

    .venv/bin/python bench/floor.py [--requests 3000]

GET /healthz (gunicorn and the first three middlewares: since the fifth pass the probes are answered
by oficina.health.ProbesMiddleware before the Host check; the earlier passes' figures went through all
twelve) and GET / ("Ingresa tu usuario": every middleware, a template and a CSRF cookie, no database)
on one keep-alive connection per thread. What serving costs before any sign-in logic runs.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.journey import connection, server_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="bench")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--env", action="append", default=[], help="extra server env NAME=VALUE")
    parser.add_argument("--unix", action="store_true", help="gunicorn on a Unix socket")
    args = parser.parse_args()
    server = server_start(args.db, 2, dict(item.split("=", 1) for item in args.env), None, args.unix)
    try:
        for path in ("/healthz", "/", "/healthz", "/"):

            def hit(n: int, path: str = path) -> None:
                conn = connection(server.target, 30)
                for _ in range(n):
                    conn.request("GET", path)
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200, response.status
                conn.close()

            c0 = server.cpu_seconds()
            threads = [
                threading.Thread(target=hit, args=(args.requests // args.threads,))
                for _ in range(args.threads)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            cpu = server.cpu_seconds() - c0
            print(
                f"GET {path:<9} server CPU {cpu / args.requests * 1000:.2f} ms/request "
                f"({args.requests} requests)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
