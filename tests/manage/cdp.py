"""A headless Chromium (Debian's `chromium`) driven through the DevTools
protocol over --remote-debugging-pipe: JSON messages ending in NUL on fds 3
(commands) and 4 (answers and events). Enough to load pages, fill and send
forms as a user does, and read the resulting DOM; no other dependency."""
import json
import os
import select
import shutil
import subprocess
import time


class Browser:
    def __init__(self, profile_dir, log_path):
        exe = shutil.which("chromium")
        if not exe:
            raise RuntimeError("no chromium (Debian's `chromium` package)")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking",
                "--disable-dev-shm-usage", "--remote-debugging-pipe",
                "--user-data-dir=" + profile_dir, "about:blank"]
        # the protocol's fds are 3 and 4 in chromium: a shell puts them there
        cmd = 'exec "$@" 3<&%d 4>&%d' % (to_chrome_r, from_chrome_w)
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(["/bin/bash", "-c", cmd, "bash"] + argv,
                                     pass_fds=(to_chrome_r, from_chrome_w),
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium said nothing in time")
            r, _, _ = select.select([self.from_chrome], [], [], left)
            if r:
                chunk = os.read(self.from_chrome, 65536)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe (exit %s)" % self.proc.poll())
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=False, timeout=20):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    del self.events[i]
                    return e
            self.events.append(self._read_message(deadline))

    def navigate(self, url):
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_event("Page.loadEventFired")

    def eval(self, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                      session=True)
        if "exceptionDetails" in r:
            raise RuntimeError("%s: %s" % (expression, r["exceptionDetails"]))
        return r["result"].get("value")

    def submit_form(self, expression_filling_it):
        """Runs the expression (which fills a form and submits it) and waits
        for the page it leads to."""
        self.events.clear()
        self.eval(expression_filling_it)
        self.wait_event("Page.loadEventFired")

    def cookies(self):
        return self.call("Network.getCookies", session=True)["cookies"]

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it is going anyway
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(5)
        os.close(self.to_chrome)
        os.close(self.from_chrome)
        self.log.close()
