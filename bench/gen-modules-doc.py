#!/usr/bin/env python3
"""Writes a generated configuration document of N APIs to stdout, the shape
issue 9 measures: OPS operations per API, a set-header policy on every tenth
API, one backend. Used to measure plan memory with `hostgate-fcgi --check`:

    bench/gen-modules-doc.py 10000 > /tmp/doc.json
    /usr/bin/time -v build/hostgate-fcgi --check /tmp/doc.json   # Maximum resident set size
"""
import json
import sys


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    ops = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    apis = []
    for i in range(n):
        api = {
            "id": "api%d" % i,
            "path": "/api%d/" % i,
            "backend": "up",
            "subscription_required": False,
            "operations": [
                {"id": "op%d" % j, "method": "get", "url_template": "/r%d/{id}" % j}
                for j in range(ops)
            ],
        }
        if i % 10 == 0:
            api["policies"] = {"inbound": [{"base": {}}, {"set-header": {
                "name": "X-Api", "value": "api%d" % i}}]}
        apis.append(api)
    doc = {
        "format": 1,
        "generation": 1,
        "backends": {"up": {"url": "http://127.0.0.1:9/"}},
        "apis": apis,
    }
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main()
