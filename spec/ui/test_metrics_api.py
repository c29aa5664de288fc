# spec/ui/test_metrics_api.py: /metrics read by the Prometheus text parser (Debian's
# python3-prometheus-client), /api/v1 JSON in the shape of Spark's streaming REST API, and the
# HTTP server under malformed requests (fuzzed request lines and headers) on real sockets.
import json
import os
import random
import re
import unittest

from prometheus_client.parser import text_string_to_metric_families

from uihelpers import ROOT, Job, raw_request, wait_until


class MetricsAndApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.job = Job(interval=0.1)
        # Enough batches that one output operation has failed (every third batch).
        wait_until(lambda: cls.job.get_json(cls.job.api + "/statistics")["numTotalCompletedBatches"] >= 4,
                   30, "four completed batches")

    notes = []  # measured figures, printed after the tests (not inside unittest's lines)

    @classmethod
    def tearDownClass(cls):
        for n in cls.notes:
            print("  " + n)
        cls.job.stop()

    def families(self):
        status, headers, body = self.job.get("/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        return {f.name: f for f in text_string_to_metric_families(body.decode())}, body.decode()

    def value(self, fams, name, sample=None, **labels):
        family = fams[name[:-6] if name.endswith("_total") else name]
        for s in family.samples:
            if s.name == (sample or name) and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError("no sample %s %s" % (sample or name, labels))

    def test_metrics_parse_as_prometheus_text_with_counters_gauges_and_histograms(self):
        fams, text = self.families()
        types = {n: f.type for n, f in fams.items()}
        # The parser names counter families without _total; the samples carry it.
        for counter in ("streamhost_batches_completed", "streamhost_batches_failed",
                        "streamhost_records_processed", "streamhost_input_records",
                        "streamhost_output_operations_completed", "streamhost_output_operations_failed",
                        "streamhost_receiver_errors", "streamhost_listener_errors", "streamhost_reloads",
                        "streamhost_checkpoints"):
            self.assertEqual(types.get(counter), "counter", counter)
            for s in fams[counter].samples:
                self.assertTrue(s.name.endswith("_total"), s.name)
        for h in ("streamhost_batch_scheduling_delay_seconds", "streamhost_batch_processing_seconds",
                  "streamhost_batch_total_delay_seconds"):
            self.assertEqual(types.get(h), "histogram", h)
            buckets = [s for s in fams[h].samples if s.name == h + "_bucket"]
            self.assertEqual(buckets[-1].labels["le"], "+Inf")
            counts = [s.value for s in buckets]
            self.assertEqual(counts, sorted(counts), "buckets are cumulative")
            self.assertEqual(counts[-1], self.value(fams, h, h + "_count"))
            self.assertGreaterEqual(counts[-1], 4)
        for g in ("streamhost_batches_running", "streamhost_batches_waiting", "streamhost_receivers_active",
                  "streamhost_batch_interval_seconds", "streamhost_info"):
            self.assertEqual(types.get(g), "gauge", g)
        self.assertEqual(self.value(fams, "streamhost_batch_interval_seconds"), 0.1)
        self.assertEqual(self.value(fams, "streamhost_receivers"), 2)
        info = fams["streamhost_info"].samples[0].labels
        self.assertEqual(info["app"], "UiSpecJob")
        self.assertTrue(info["script"].endswith("ui_job.lua"))
        self.assertRegex(info["script_hash"], r"^crc32c:[0-9a-f]{8}:[0-9]+$")
        # The same form as checkpoints and reloads name a script: its length is the file's.
        self.assertEqual(int(info["script_hash"].rsplit(":", 1)[1]), os.path.getsize(os.path.join(ROOT, info["script"])))
        # Labels name streams and results, never a batch.
        for f in fams.values():
            for s in f.samples:
                self.assertFalse(set(s.labels) & {"batch", "batch_time", "batchTime", "time"}, s)
        self.assertNotRegex(text, r"_milliseconds|_ms\b")

    def test_metrics_agree_with_the_api(self):
        fams, _ = self.families()
        stats = self.job.get_json(self.job.api + "/statistics")
        fams2, _ = self.families()
        lo = self.value(fams, "streamhost_batches_completed_total")
        hi = self.value(fams2, "streamhost_batches_completed_total")
        self.assertTrue(lo <= stats["numTotalCompletedBatches"] <= hi)
        failed = self.value(fams2, "streamhost_output_operations_failed_total")
        self.assertGreaterEqual(failed, 1)
        self.assertEqual(self.value(fams2, "streamhost_batches_failed_total"), failed)
        socket_records = self.value(fams2, "streamhost_input_records_total", stream_id="1")
        self.assertGreater(socket_records, 0)
        # The receiver whose peer hung up: its errors are counted, the other's are not.
        wait_until(lambda: self.value(self.families()[0], "streamhost_receiver_errors_total", stream_id="2") >= 1,
                   20, "the lost peer's error in /metrics")
        self.assertEqual(self.value(fams2, "streamhost_receiver_errors_total", stream_id="1"), 0)

    def test_api_statistics_batches_operations_and_receivers_have_sparks_fields(self):
        job = self.job
        apps = job.get_json("/api/v1/applications")
        self.assertEqual(apps[0]["name"], "UiSpecJob")
        stats = job.get_json(job.api + "/statistics")
        for k in ("startTime", "batchDuration", "numReceivers", "numActiveReceivers", "numInactiveReceivers",
                  "numTotalCompletedBatches", "numRetainedCompletedBatches", "numActiveBatches",
                  "numProcessedRecords", "numReceivedRecords", "avgInputRate", "avgSchedulingDelay",
                  "avgProcessingTime", "avgTotalDelay"):
            self.assertIn(k, stats)
        self.assertEqual(stats["batchDuration"], 100)
        self.assertRegex(stats["startTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}GMT$")
        batches = job.get_json(job.api + "/batches")
        ids = [b["batchId"] for b in batches]
        self.assertEqual(ids, sorted(ids, reverse=True), "newest first")
        done = [b for b in batches if b["status"] == "COMPLETED"]
        failed = [b for b in done if b["numFailedOutputOps"] == 1][0]
        self.assertEqual(failed["numTotalOutputOps"], 3)
        self.assertRegex(failed["firstFailureReason"], r"ui_job\.lua:\d+: every third batch fails")
        self.assertEqual(failed["totalDelay"], failed["schedulingDelay"] + failed["processingTime"])
        ops = job.get_json("%s/batches/%d/operations" % (job.api, failed["batchId"]))
        self.assertEqual([o["outputOpId"] for o in ops], [0, 1, 2])
        self.assertIsNone(ops[0]["failureReason"])
        self.assertRegex(ops[1]["failureReason"], r"ui_job\.lua:\d+")
        self.assertEqual(ops[1]["name"], "foreachRDD")
        self.assertRegex(ops[1]["description"], r"ui_job\.lua:\d+")
        one = job.get_json("%s/batches/%d/operations/1" % (job.api, failed["batchId"]))
        self.assertEqual(one, ops[1])
        receivers = job.get_json(job.api + "/receivers")
        self.assertEqual([r["streamId"] for r in receivers], [1, 2])
        r = receivers[0]
        self.assertEqual(r["streamId"], 1)
        self.assertTrue(r["isActive"])
        self.assertRegex(r["streamName"], r"^SocketReceiver\(127\.0\.0\.1:\d+\)$")
        self.assertGreater(r["avgEventRate"], 0)
        self.assertIsNone(r["lastErrorMessage"])
        lost = wait_until(lambda: job.get_json(job.api + "/receivers/2")["lastErrorMessage"], 20,
                          "the lost peer's error in the API")
        self.assertIn("127.0.0.1:%d" % job.peer.port, lost)
        self.assertRegex(job.get_json(job.api + "/receivers/2")["lastErrorTime"], r"GMT$")
        host = job.get_json(job.api + "/host")
        self.assertEqual(host["state"], "ACTIVE")
        self.assertFalse(host["checkpoint"]["enabled"])
        self.assertEqual(host["reloads"], [])

    def test_api_answers_404_for_what_does_not_exist(self):
        job = self.job
        for path in ("/api/v1/applications/nope/streaming/statistics", job.api + "/batches/12",
                     job.api + "/batches/x", job.api + "/receivers/0", job.api + "/receivers/99",
                     job.api + "/nothing", "/api/v1/applications/%s/streaming/batches/1/operations/0" % job.app,
                     "/nope", "/static/../../etc/passwd", "/api/v2"):
            status, reply = raw_request(job.host, job.port, ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
            self.assertEqual(status, 404, path)

    def test_server_binds_loopback_by_default(self):
        self.assertEqual(self.job.host, "127.0.0.1")
        port = "%04X" % self.job.port
        with open("/proc/net/tcp") as f:
            listening = [l.split()[1] for l in f.read().splitlines()[1:] if l.split()[3] == "0A"]
        self.assertIn("0100007F:" + port, listening)

    def test_malformed_requests_get_4xx_and_the_host_goes_on(self):
        job = self.job
        h, p = job.host, job.port
        cases = {
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n": 200,
            b"HEAD /metrics HTTP/1.0\r\n\r\n": 200,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n": 405,
            b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n": 405,
            b"GET / HTTP/1.1\r\n\r\n": 400,                                  # no Host
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n": 400,
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n": 400,
            b"GET /\r\n\r\n": 400,
            b"GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n": 400,
            b"GET / HTTP/1.1\nHost: x\n\n": 400,                             # bare LF
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n": 400,
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n": 400,
            b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n": 400,
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello": 413,
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n": 400,
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n": 413,
            b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n": 414,
            b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 9000 + b"\r\n\r\n": 431,
            b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 100 + b"\r\n": 431,
            b"\r\n\r\n": 400,
            b"G\xc3\xa9T / HTTP/1.1\r\nHost: x\r\n\r\n": 400,
        }
        for req, want in cases.items():
            got, reply = raw_request(h, p, req)
            self.assertEqual(got, want, "%r -> %r" % (req[:80], reply[:80]))
        # Fuzzed request lines and headers: every answer is a 2xx/4xx status line, never a
        # 5xx, a hang or a crash.
        rng = random.Random(11)
        alphabet = b"GETPOSHADLU /?#%:.-_0123456789HTTP/1.\r\n\t\x00\x7f\xff azAZ\"'<>"
        seen = {}
        for i in range(300):
            base = rng.choice([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /metrics HTTP/1.0\r\n\r\n",
                               b"HEAD /api/v1/applications HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"])
            data = bytearray(base)
            for _ in range(rng.randint(1, 6)):
                op, pos = rng.randrange(3), rng.randrange(len(data) + 1)
                if op == 0:
                    data[pos:pos] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
                elif op == 1 and len(data) > 1:
                    del data[pos:pos + rng.randint(1, 4)]
                else:
                    data[pos:pos + 1] = bytes([rng.randrange(256)])
            if rng.random() < 0.5 and b"\r\n\r\n" not in bytes(data):
                data += b"\r\n\r\n"
            got, reply = raw_request(h, p, bytes(data))
            self.assertTrue(got is not None and (200 <= got < 300 or 400 <= got < 500) or
                            (got is None and b"\r\n\r\n" not in bytes(data)),
                            "%r -> %r" % (bytes(data)[:100], reply[:100]))
            seen[got] = seen.get(got, 0) + 1
        self.assertTrue(job.alive(), job.stderr())
        self.assertEqual(job.get("/metrics")[0], 200)
        type(self).notes.append("fuzzed replies by status: %s" % dict(sorted(seen.items(), key=lambda kv: str(kv[0]))))


if __name__ == "__main__":
    unittest.main()
