// ui/streaming.js: fills the status page from the host's /api/v1 once a second: live dygraphs
// plots of the last completed batches, the batch and receiver tables, script and checkpoints.
"use strict";
(function () {
  const POLL_MS = 1000;
  const state = { app: null, graphs: {}, polls: 0, failures: 0, rows: 0, shown: 100,
                  intervalS: null, lastBatchId: null };

  function $(id) { return document.getElementById(id); }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function row(cells, cls) {
    const tr = el("tr", null, cls);
    for (const c of cells) {
      if (c instanceof Node) { const td = el("td"); td.appendChild(c); tr.appendChild(td); }
      else if (typeof c === "number") tr.appendChild(el("td", c, "num"));
      else tr.appendChild(el("td", c));
    }
    return tr;
  }

  function fillBody(table, rows) {
    const body = $(table).tBodies[0];
    body.replaceChildren(...rows);
  }

  function ms(v) { return v === null || v === undefined ? "-" : (v < 1000 ? v + " ms" : (v / 1000).toFixed(2) + " s"); }
  function time(iso) { return iso ? iso.replace("T", " ").replace("GMT", " UTC") : "-"; }
  function batchTime(id) { return new Date(id).toISOString().replace("T", " ").replace("Z", " UTC"); }

  async function get(path) {
    const r = await fetch(path, { cache: "no-store" });
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }

  function plot(key, title, unit, series, withInterval) {
    const labels = ["Batch time", series].concat(withInterval ? ["Batch interval"] : []);
    return new Dygraph($("plot-" + key), [[new Date(), 0].concat(withInterval ? [0] : [])], {
      labels: labels, ylabel: unit, includeZero: true, drawPoints: true, pointSize: 2,
      legend: "follow", axes: { x: { axisLabelWidth: 70 }, y: { axisLabelWidth: 60 } }, colors: withInterval ? ["#2980b9", "#c0392b"] : ["#2980b9"],
      series: withInterval ? { "Batch interval": { strokePattern: Dygraph.DASHED_LINE, drawPoints: false } } : {},
      title: title,
    });
  }

  function ensureGraphs() {
    if (state.graphs.rate) return;
    state.graphs.rate = plot("rate", null, "records/s", "Input rate", false);
    state.graphs.sched = plot("sched", null, "ms", "Scheduling delay", false);
    state.graphs.proc = plot("proc", null, "ms", "Processing time", true);
    state.graphs.total = plot("total", null, "ms", "Total delay", false);
  }

  function updatePlots(completed, intervalS) {
    // Oldest first, as the plots' x axis runs.
    const rows = completed.slice().reverse();
    if (rows.length === 0) return;
    ensureGraphs();
    const rate = [], sched = [], proc = [], total = [];
    for (const b of rows) {
      const t = new Date(b.batchId);
      rate.push([t, intervalS > 0 ? b.inputSize / intervalS : 0]);
      sched.push([t, b.schedulingDelay || 0]);
      proc.push([t, b.processingTime || 0, intervalS * 1000]);
      total.push([t, b.totalDelay || 0]);
    }
    state.graphs.rate.updateOptions({ file: rate });
    state.graphs.sched.updateOptions({ file: sched });
    state.graphs.proc.updateOptions({ file: proc });
    state.graphs.total.updateOptions({ file: total });
    state.rows = rows.length;
  }

  function opsCell(b) {
    const d = el("details");
    const s = el("summary", b.numCompletedOutputOps + "/" + b.numTotalOutputOps +
      " succeeded" + (b.numFailedOutputOps ? ", " + b.numFailedOutputOps + " failed" : "") +
      (b.numActiveOutputOps ? ", " + b.numActiveOutputOps + " running" : ""));
    d.appendChild(s);
    const t = el("table");
    t.appendChild(row(["Id", "Name", "Description", "Duration", "Error"]));
    for (const op of b.outputOperations || []) {
      t.appendChild(row([op.outputOpId, op.name, op.description, ms(op.duration),
                         op.failureReason ? el("div", op.failureReason, "error") : ""],
                        op.failureReason ? "failed" : null));
    }
    d.appendChild(t);
    if (b.firstFailureReason) {
      const wrap = el("div");
      wrap.appendChild(d);
      wrap.appendChild(el("div", b.firstFailureReason.split("\n")[0], "error"));
      return wrap;
    }
    return d;
  }

  function updateBatches(batches) {
    const active = batches.filter(b => b.status !== "COMPLETED");
    const completed = batches.filter(b => b.status === "COMPLETED");
    $("n-active").textContent = active.length;
    $("n-completed").textContent = completed.length;
    fillBody("active", active.map(b => row([batchTime(b.batchId), b.status === "PROCESSING" ? "processing" : "queued",
      b.inputSize, ms(b.schedulingDelay), ms(b.processingTime), opsCell(b)])));
    fillBody("completed", completed.slice(0, state.shown).map(b => row([batchTime(b.batchId), b.inputSize,
      ms(b.schedulingDelay), ms(b.processingTime), ms(b.totalDelay), opsCell(b)],
      b.numFailedOutputOps ? "failed" : null)));
    $("more").hidden = completed.length <= state.shown;
    return completed;
  }

  function updateReceivers(receivers) {
    $("no-receivers").hidden = receivers.length > 0;
    fillBody("receivers", receivers.map(r => row([r.streamId, r.streamName, r.isActive ? "ACTIVE" : "INACTIVE",
      r.executorHost, Number(r.avgEventRate || 0).toFixed(1), r.numErrors, time(r.lastErrorTime),
      r.lastErrorMessage ? el("div", r.lastErrorMessage, "error") : ""], r.lastErrorMessage ? "failed" : null)));
  }

  function dl(id, pairs) {
    const d = $(id);
    d.replaceChildren();
    for (const [k, v] of pairs) { d.appendChild(el("dt", k)); d.appendChild(el("dd", v === null || v === undefined ? "-" : v)); }
  }

  function updateHost(h) {
    dl("script", [["Path", h.script], ["Hash (" + h.hashAlgorithm + ")", h.scriptHash], ["State", h.state],
                  ["Started", time(h.startTime)], ["Failed batches", h.numFailedBatches],
                  ["Listeners removed", h.numListenerErrors]]);
    $("no-reloads").hidden = h.reloads.length > 0;
    fillBody("reloads", h.reloads.slice().reverse().map(r => row([time(r.time), r.accepted ? "accepted" : "rejected",
      r.script, r.scriptHash, r.message ? el("div", r.message, "error") : ""], r.accepted ? null : "failed")));
    const c = h.checkpoint;
    dl("checkpoint", c.enabled ? [["Directory", c.directory], ["Last write", time(c.lastTime)],
                                  ["Batch covered", time(c.lastBatchTime)],
                                  ["Result", !c.lastTime ? "none written yet" : c.lastOk ? "written" : "failed"],
                                  ["Written / failed", c.numWritten + " / " + c.numFailed],
                                  ["Message", c.lastMessage]]
                               : [["Checkpointing", "off"]]);
  }

  function updateSummary(s, h) {
    $("app-name").textContent = h.appName ? "· " + h.appName : "";
    $("retained").textContent = s.numRetainedCompletedBatches;
    $("n-total").textContent = s.numTotalCompletedBatches;
    $("summary-line").textContent = "Running batches of " + ms(s.batchDuration) + " since " + time(s.startTime) +
      " (" + h.state.toLowerCase() + "); " + s.numTotalCompletedBatches + " completed batches, " +
      s.numProcessedRecords + " records; " + s.numActiveReceivers + " of " + s.numReceivers + " receivers active.";
    const avg = (v, unit) => v === null || v === undefined ? "" : "(avg " + v + unit + ")";
    $("avg-rate").textContent = avg(Number(s.avgInputRate || 0).toFixed(1), " records/s");
    $("avg-sched").textContent = avg(s.avgSchedulingDelay, " ms");
    $("avg-proc").textContent = avg(s.avgProcessingTime, " ms");
    $("avg-total").textContent = avg(s.avgTotalDelay, " ms");
  }

  async function poll() {
    try {
      if (!state.app) state.app = (await get("/api/v1/applications"))[0].id;
      const base = "/api/v1/applications/" + encodeURIComponent(state.app) + "/streaming/";
      const [s, batches, receivers, h] = await Promise.all([get(base + "statistics"),
        get(base + "batches?operations=true"), get(base + "receivers"), get(base + "host")]);
      updateSummary(s, h);
      const completed = updateBatches(batches);
      updatePlots(completed, s.batchDuration / 1000);
      updateReceivers(receivers);
      updateHost(h);
      state.polls++;
      $("connection").textContent = "live";
      $("connection").className = "pill live";
    } catch (e) {
      state.failures++;
      $("connection").textContent = "host not answering";
      $("connection").className = "pill lost";
    }
    setTimeout(poll, POLL_MS);
  }

  $("more").addEventListener("click", () => { state.shown += 100; });
  // For tests and the curious: how many polls succeeded, how many points each plot has.
  window.streamhostUi = {
    polls: () => state.polls,
    failures: () => state.failures,
    points: () => state.graphs.rate ? state.rows : 0,
    plotRows: () => Object.fromEntries(Object.entries(state.graphs).map(([k, g]) => [k, g.numRows()])),
    plotMax: (key) => {
      const g = state.graphs[key];
      let max = 0;
      for (let i = 0; g && i < g.numRows(); i++) max = Math.max(max, g.getValue(i, 1));
      return max;
    },
  };
  poll();
})();
