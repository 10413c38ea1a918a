"""Counts the ARM reads of one `source = azure-apim` sync against the fake
(fake_arm.py), for docs/azure-apim.md: 10 APIs (2 products, 20 subscriptions)
and 200 APIs (20 products, 1000 subscriptions), 5 operations each.

    cd tests/sync && python3 apim_reads.py ../../build/hostgate-sync [arm_reads_per_s]

Each: the first sync, a sync where nothing changed, one where one
subscription's primary key was regenerated.
"""
import pathlib
import subprocess
import sys
import tempfile
import time

from fake_arm import (CLIENT_ID, CLIENT_SECRET, SERVICE, TENANT, FakeArm, gateway_api,
                      operation, product, subscription)


def main(agent, rate):
    for n_apis, n_prod, n_subs in ((10, 2, 20), (200, 20, 1000)):
        d = pathlib.Path(tempfile.mkdtemp())
        f = FakeArm(d)
        f.gateway_apis["gw1"] = [gateway_api("api-%d" % i, "p%d" % i, "http://127.0.0.1:9/")
                                 for i in range(n_apis)]
        for i in range(n_prod):
            f.products["p%d" % i] = (product("p%d" % i),
                                     ["api-%d" % j for j in range(i, n_apis, n_prod)])
        for i in range(n_subs):
            f.subscriptions["s%d" % i] = (subscription("s%d" % i, "/products/p%d" % (i % n_prod)),
                                          ["k%d" % i, "l%d" % i])
        for i in range(n_apis):
            f.operations["api-%d" % i] = [operation("api-%d" % i, "op-%d" % k, "GET", "/r%d" % k)
                                          for k in range(5)]
        sec = d / "secret"
        sec.write_text(CLIENT_SECRET)
        sec.chmod(0o600)
        conf = d / "agent.conf"
        conf.write_text("".join("%s = %s\n" % kv for kv in {
            "source": "azure-apim", "apim_service": SERVICE, "apim_gateway": "gw1",
            "azure_tenant": TENANT, "azure_client_id": CLIENT_ID,
            "azure_client_secret_file": sec, "arm_endpoint": f.url, "azure_authority": f.url,
            "ca_file": f.ca, "config_path": d / "config.json", "state_dir": d,
            "arm_reads_per_s": rate}.items()))
        for what in ("first sync", "nothing changed", "one key regenerated"):
            if what == "one key regenerated":
                f.subscriptions["s0"][1][0] = "k0-regenerated"
            f.requests.clear()
            t = time.monotonic()
            p = subprocess.run([agent, "-c", str(conf), "--once"], capture_output=True,
                               text=True)
            posts = sum(1 for r in f.reads() if r["method"] == "POST")
            print("%d APIs x 5 operations, %d products, %d subscriptions, %s: exit %d, "
                  "%d ARM reads (%d listSecrets), %d token requests, %.1fs at %s reads/s"
                  % (n_apis, n_prod, n_subs, what, p.returncode, len(f.reads()), posts,
                     len(f.token_requests()), time.monotonic() - t, rate))
        f.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "10")
