# spec/ui/test_status_page.py: the status page in real headless Chromium against a running job:
# it loads with no console errors, its plots gain points as batches complete, and it goes on
# answering while a foreachRDD keeps the driver busy for 3 s. A screenshot is kept in
# build/test-output/.
import os
import time
import unittest

from uihelpers import OUTPUT_DIR, ROOT, Chromium, Job, console_errors, wait_until


class StatusPageInChromium(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.job = Job()
        cls.browser = Chromium()
        b = cls.browser
        b.page("Runtime.enable")
        b.page("Log.enable")
        b.page("Page.enable")
        b.page("Page.navigate", {"url": cls.job.base + "/"})

    notes = []  # measured figures, printed after the tests (not inside unittest's lines)

    @classmethod
    def tearDownClass(cls):
        for n in cls.notes:
            print("  " + n)
        cls.browser.close()
        cls.job.stop()

    def points(self):
        return self.browser.evaluate("window.streamhostUi ? streamhostUi.points() : -1")

    def test_1_page_loads_without_console_errors_and_plots_gain_points(self):
        b = self.browser
        first = wait_until(lambda: (self.points() or 0) >= 2, 30, "the plots' first points")
        self.assertTrue(first)
        n = self.points()
        more = wait_until(lambda: self.points() >= n + 3, 30, "three more points in the plots")
        self.assertTrue(more)
        rows = b.evaluate("streamhostUi.plotRows()")
        self.assertEqual(set(rows), {"rate", "sched", "proc", "total"})
        self.assertTrue(all(v >= n + 3 for v in rows.values()), rows)
        # The tables are filled: a receiver row and completed batches, one with its failure.
        text = b.evaluate("document.body.innerText")
        self.assertIn("SocketReceiver(127.0.0.1:", text)
        # The receiver whose peer hung up shows its error in the receivers table.
        wait_until(lambda: "peer closed the connection" in b.evaluate(
            "document.querySelector('#receivers tbody').innerText"), 20, "the lost peer's error on the page")
        self.assertRegex(text, r"ui_job\.lua:\d+: every third batch fails")
        self.assertIn("UiSpecJob", text)
        self.assertEqual(console_errors(b.drain_events()), [])

    def test_2_page_answers_while_a_foreachRDD_is_busy_for_3_s(self):
        b, job = self.browser, self.job
        polls_before = b.evaluate("streamhostUi.polls()")
        open(os.path.join(job.dir, "busy"), "wb").close()
        wait_until(lambda: os.path.exists(os.path.join(job.dir, "busy-start")), 30, "the busy batch")
        t0 = time.monotonic()
        # During the busy batch: the page's own polls keep succeeding, and direct requests answer.
        answers = []
        while not os.path.exists(os.path.join(job.dir, "busy-end")):
            s = time.monotonic()
            status, _, body = job.get("/metrics", timeout=2)
            answers.append(time.monotonic() - s)
            self.assertEqual(status, 200)
            if len(answers) == 1:
                self.assertIn(b"streamhost_batches_running 1", body)
                # The running batch shows as PROCESSING in the API.
                running = job.get_json(job.api + "/batches?status=PROCESSING")
                self.assertEqual(len(running), 1)
            time.sleep(0.1)
        busy_for = time.monotonic() - t0
        polls_during = b.evaluate("streamhostUi.polls()") - polls_before
        self.assertGreaterEqual(busy_for, 2.0, "the busy batch was not busy")
        self.assertGreaterEqual(len(answers), 5)
        self.assertLess(max(answers), 2.0, answers)  # each far inside the 3 s busy batch
        self.assertGreaterEqual(polls_during, 2)
        type(self).notes.append("busy %.1fs: %d /metrics answers, slowest %.1f ms, median %.1f ms; page polls %d"
              % (busy_for, len(answers), max(answers) * 1000, sorted(answers)[len(answers) // 2] * 1000,
                 polls_during))
        # After it: the long batch is in the plots (processing time over 2 s) and the page is clean.
        wait_until(lambda: b.evaluate("streamhostUi.plotMax('proc')") >= 2000, 30,
                   "the busy batch's processing time in the plot")
        self.assertEqual(console_errors(b.drain_events()), [])
        path = os.path.join(OUTPUT_DIR, "ui-status-page.png")
        b.screenshot(path)
        self.assertGreater(os.path.getsize(path), 10000)
        type(self).notes.append("screenshot: " + os.path.relpath(path, ROOT))


if __name__ == "__main__":
    unittest.main()
