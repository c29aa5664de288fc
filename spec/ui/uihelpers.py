# spec/ui/uihelpers.py: shared code of the status-page tests: a streamhost process running
# spec/ui/ui_job.lua with --ui on a free port, raw HTTP on real sockets, and a Chrome DevTools
# Protocol client for headless Chromium over --remote-debugging-pipe.
import base64
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STREAMHOST = os.path.join(ROOT, os.environ.get("STREAMHOST", "host/streamhost"))
OUTPUT_DIR = os.path.join(ROOT, "build", "test-output")


def wait_until(cond, timeout, what, step=0.05):
    """Polls cond() until it returns a true value (returned) or timeout seconds pass (raises)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(step)


class Job:
    """streamhost running ui_job.lua with the status server on 127.0.0.1 and a free port."""

    def __init__(self, seconds=90, interval=0.2, ui="127.0.0.1:0", hangup_peer=True):
        self.dir = tempfile.mkdtemp(prefix="ui-job-")
        self.err_path = os.path.join(self.dir, "stderr")
        self.peer = LineServer() if hangup_peer else None
        extra = [str(self.peer.port)] if self.peer else []
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [STREAMHOST, "--master", "local[2]", "--ui", ui, "spec/ui/ui_job.lua", self.dir,
                 str(seconds), str(interval)] + extra,
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        if self.peer:
            self.peer.cmd("accept")  # the job's second receiver connects, then loses its peer
            self.peer.cmd("close")
        m = wait_until(lambda: re.search(r"status page at http://([0-9.]+):(\d+)/", self.stderr()),
                       20, "the status page's address on stderr")
        self.host, self.port = m.group(1), int(m.group(2))
        self.base = "http://%s:%d" % (self.host, self.port)
        self.app = self.get_json("/api/v1/applications")[0]["id"]
        self.api = "/api/v1/applications/%s/streaming" % self.app

    def stderr(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def get(self, path, timeout=10):
        with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
            return r.status, r.headers, r.read()

    def get_json(self, path):
        return json.loads(self.get(path)[2].decode())

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.peer:
            self.peer.quit()
        shutil.rmtree(self.dir, ignore_errors=True)


class LineServer:
    """build/peers/line_server (make peers): a TCP peer on 127.0.0.1 driven by commands."""

    def __init__(self):
        self.proc = subprocess.Popen([os.path.join(ROOT, "build/peers/line_server"), "0"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"PORT (\d+)", line)
        if not m:
            self.quit()
            raise AssertionError("line_server printed %r, not its port (is it built?)" % line)
        self.port = int(m.group(1))

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def quit(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            f.close()


def raw_request(host, port, data, timeout=5.0):
    """Sends bytes on a fresh connection, half-closes it (the server sees the end of what a
    client sends) and reads the reply until the server closes. Returns the status code (int) or
    None when the server closed without a reply, and the reply's bytes."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse and close before it has read everything
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except ConnectionResetError:
            pass
    reply = b"".join(chunks)
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", reply)
    return (int(m.group(1)) if m else None), reply


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, width=1300, height=1500):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            raise AssertionError("chromium is not installed (scripts/setup installs it)")
        self.profile = tempfile.mkdtemp(prefix="ui-chromium-")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking",
                "--user-data-dir=" + self.profile, "--window-size=%d,%d" % (width, height),
                "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(
            ["bash", "-c", 'exec "$@" 3<&%d 4>&%d' % (to_chrome_r, from_chrome_w), "chromium"] + args,
            pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next = 0
        self._replies = {}
        self._cv = threading.Condition()
        self.events = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cv:
                    self._replies[None] = True
                    self._cv.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                m = json.loads(msg)
                if "id" in m:
                    with self._cv:
                        self._replies[m["id"]] = m
                        self._cv.notify_all()
                else:
                    self.events.put(m)

    def call(self, method, params=None, session=None, timeout=30):
        self._next += 1
        mid = self._next
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cv:
            while mid not in self._replies:
                if None in self._replies:
                    raise AssertionError("chromium exited while waiting for " + method)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("chromium did not answer %s in %gs" % (method, timeout))
                self._cv.wait(left)
            m = self._replies.pop(mid)
        if "error" in m:
            raise AssertionError("%s failed: %s" % (method, m["error"]))
        return m["result"]

    def page(self, method, params=None, timeout=30):
        return self.call(method, params, self.session, timeout)

    def evaluate(self, expression):
        r = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise AssertionError("page script failed: %s" % r["exceptionDetails"])
        return r["result"].get("value")

    def drain_events(self):
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def screenshot(self, path):
        data = self.page("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except AssertionError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        shutil.rmtree(self.profile, ignore_errors=True)


def console_errors(events):
    """The console errors, uncaught exceptions and failed loads among CDP events."""
    errs = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            errs.append("exception: %s" % json.dumps(p.get("exceptionDetails", {}))[:500])
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errs.append("console.%s: %s" % (p["type"], json.dumps(p.get("args"))[:500]))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            errs.append("log: %s %s" % (p["entry"].get("text"), p["entry"].get("url", "")))
    return errs
