// Eddy's live change-stream viewer: opens /v1/watch/... with EventSource (which sends
// Last-Event-ID when it reconnects, so the server resumes exactly after the last event
// shown), draws each event colour-coded by operation type (with the fields an update set
// and removed) and a chart of events per second. No library, no build step.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("watch-form");
  const statusEl = $("status");
  const eventsEl = $("events");
  const countsEl = $("counts");
  const canvas = $("rate");
  const pauseButton = $("pause");

  /** The operation types mongod emits, in the order the legend shows them. */
  const OPERATIONS = [
    "insert", "update", "replace", "delete", "drop", "rename", "dropDatabase", "invalidate",
    "create", "createIndexes", "dropIndexes", "modify", "shardCollection",
    "refineCollectionShardKey", "reshardCollection",
  ];
  const COLOURS = {
    insert: "--insert", update: "--update", replace: "--replace", delete: "--delete",
    drop: "--ddl", rename: "--ddl", dropDatabase: "--ddl", invalidate: "--ddl", create: "--ddl",
    createIndexes: "--ddl", dropIndexes: "--ddl", modify: "--ddl",
  };
  /** At most this many events stay on the page (older ones are dropped). */
  const MAX_ROWS = 500;
  const SECONDS = 60;

  const state = {
    source: null, // the EventSource
    query: null, // what is watched: {db, coll, match, fullDocument, fullDocumentBeforeChange}
    lastId: null, // the resume token of the last event or heartbeat
    paused: false,
    counts: new Map(),
    // events per second: one Map(op -> n) per second, newest last
    buckets: Array.from({ length: SECONDS }, () => new Map()),
    bucketSecond: Math.floor(Date.now() / 1000),
    drawQueued: false,
  };

  // ---- status ---------------------------------------------------------------------------

  function setStatus(kind, text) {
    statusEl.className = "status " + kind;
    statusEl.textContent = text;
    pauseButton.disabled = kind === "idle" || kind === "failed";
    pauseButton.textContent = state.paused ? "Resume" : "Pause";
  }

  function setLastId(id) {
    state.lastId = id;
    $("last-id").textContent = id || "none";
  }

  // ---- the stream -------------------------------------------------------------------------

  /** The URL of the stream, starting after `resumeAfter` when given. */
  function streamUrl(query, resumeAfter) {
    let path = "v1/watch";
    if (query.db) {
      path += "/" + encodeURIComponent(query.db);
      if (query.coll) path += "/" + encodeURIComponent(query.coll);
    }
    const params = new URLSearchParams();
    if (query.match) params.set("match", query.match);
    if (query.fullDocument !== "default") params.set("fullDocument", query.fullDocument);
    if (query.fullDocumentBeforeChange !== "off") {
      params.set("fullDocumentBeforeChange", query.fullDocumentBeforeChange);
    }
    if (resumeAfter) params.set("resumeAfter", resumeAfter);
    const authSource = new URLSearchParams(location.search).get("authSource");
    if (authSource) params.set("authSource", authSource);
    const qs = params.toString();
    return path + (qs ? "?" + qs : "");
  }

  function readForm() {
    return {
      db: $("db").value.trim(),
      coll: $("coll").value.trim(),
      match: $("match").value.trim(),
      fullDocument: $("fullDocument").value,
      fullDocumentBeforeChange: $("fullDocumentBeforeChange").value,
    };
  }

  function describe(query) {
    const where = query.db ? (query.coll ? query.db + "." + query.coll : query.db + " (database)") : "every database";
    return where + (query.match ? " where " + query.match : "");
  }

  /** Opens the stream of `state.query`, after `resumeAfter` if given. */
  function open(resumeAfter) {
    close();
    const url = streamUrl(state.query, resumeAfter);
    const source = new EventSource(url);
    state.source = source;
    setStatus("reconnecting", "connecting…");
    source.onopen = () => setStatus("live", "live");
    source.onerror = (e) => {
      // The server's own `error` events (MessageEvents with data) have their listener below.
      if (state.source !== source || e instanceof MessageEvent) return;
      if (source.readyState === EventSource.CONNECTING) {
        // The connection dropped (a server restart): EventSource retries by itself and
        // sends Last-Event-ID, so nothing is lost or repeated.
        setStatus("reconnecting", "reconnecting…");
      } else {
        // Refused (a bad $match, a missing privilege): EventSource gives up without
        // showing why, so ask once more for the error itself.
        explain(url);
      }
    };
    for (const op of OPERATIONS) source.addEventListener(op, onChange);
    source.addEventListener("message", onChange); // events whose type a pipeline removed
    source.addEventListener("heartbeat", (e) => setLastId(e.lastEventId));
    source.addEventListener("error", (e) => {
      if (!(e instanceof MessageEvent)) return; // a connection error, handled by onerror
      let err = {};
      try { err = JSON.parse(e.data); } catch (_) { /* shown raw below */ }
      close();
      setStatus("failed", (err.codeName || "error") + (err.code ? " (" + err.code + ")" : ""));
      addNotice((err.errmsg || e.data) + (err.resumeToken ? " — resume token " + JSON.stringify(err.resumeToken) : ""));
    });
  }

  function close() {
    if (state.source) {
      state.source.close();
      state.source = null;
    }
  }

  async function explain(url) {
    close();
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        response.body && response.body.cancel();
        setStatus("failed", "disconnected");
        return;
      }
      const text = await response.text();
      let err = {};
      try { err = JSON.parse(text); } catch (_) { err = { errmsg: text.trim() }; }
      setStatus("failed", "HTTP " + response.status + (err.codeName ? " · " + err.codeName + " (" + err.code + ")" : ""));
      addNotice(err.errmsg || "HTTP " + response.status);
    } catch (e) {
      setStatus("failed", "server unreachable");
    }
  }

  function onChange(e) {
    let event;
    try { event = JSON.parse(e.data); } catch (_) { return; }
    setLastId(e.lastEventId);
    const op = typeof event.operationType === "string" ? event.operationType : "message";
    state.counts.set(op, (state.counts.get(op) || 0) + 1);
    tick();
    state.buckets[SECONDS - 1].set(op, (state.buckets[SECONDS - 1].get(op) || 0) + 1);
    renderCounts();
    queueDraw();
    eventsEl.prepend(row(event, op, e.lastEventId));
    while (eventsEl.childElementCount > MAX_ROWS) eventsEl.lastElementChild.remove();
  }

  // ---- rendering -------------------------------------------------------------------------

  /** A value of canonical Extended JSON, written as the shell writes it. */
  function show(v) {
    if (v === null) return "null";
    if (Array.isArray(v)) return "[" + v.map(show).join(", ") + "]";
    if (typeof v === "string") return JSON.stringify(v);
    if (typeof v !== "object") return String(v);
    const keys = Object.keys(v);
    if (keys.length === 1 || (keys.length === 2 && "$scope" in v)) {
      const k = keys[0], x = v[k];
      switch (k) {
        case "$numberInt": case "$numberDouble": return x;
        case "$numberLong": return "Long(" + JSON.stringify(x) + ")";
        case "$numberDecimal": return "Decimal128(" + JSON.stringify(x) + ")";
        case "$oid": return "ObjectId(" + JSON.stringify(x) + ")";
        case "$date": {
          const ms = typeof x === "object" ? Number(x.$numberLong) : Date.parse(x);
          const d = new Date(ms);
          return isNaN(d) ? "Date(" + show(x) + ")" : "ISODate(" + JSON.stringify(d.toISOString()) + ")";
        }
        case "$timestamp": return "Timestamp({t: " + x.t + ", i: " + x.i + "})";
        case "$binary": return "Binary(" + JSON.stringify(x.base64) + ", " + x.subType + ")";
        case "$regularExpression": return "/" + x.pattern + "/" + x.options;
        case "$minKey": return "MinKey()";
        case "$maxKey": return "MaxKey()";
        case "$symbol": return "Symbol(" + JSON.stringify(x) + ")";
        case "$code": return "Code(" + JSON.stringify(x) + ")";
        case "$undefined": return "undefined";
      }
    }
    return "{" + keys.map((k) => k + ": " + show(v[k])).join(", ") + "}";
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** A field of a dotted path in a document (for the old value of an updated field). */
  function at(doc, path) {
    return path.split(".").reduce((d, k) => (d && typeof d === "object" && k in d ? d[k] : undefined), doc);
  }

  function row(event, op, id) {
    const li = el("li", "event op-" + op.replace(/[^A-Za-z]/g, ""));
    li.dataset.op = op;
    if (id) li.dataset.id = id;
    const line = el("div", "line");
    line.append(el("span", "badge", op));
    if (event.ns) line.append(el("span", "ns", event.ns.db + (event.ns.coll ? "." + event.ns.coll : "")));
    if (event.to) line.append(el("span", "ns", "→ " + event.to.db + "." + event.to.coll));
    if (event.documentKey) {
      const key = el("span", "key", show(event.documentKey).replace(/^\{|\}$/g, ""));
      li.dataset.key = JSON.stringify(event.documentKey);
      line.append(key);
    }
    const time = el("time");
    const wall = event.wallTime && event.wallTime.$date;
    const when = new Date(wall && typeof wall === "object" ? Number(wall.$numberLong) : Date.now());
    time.textContent = when.toLocaleTimeString([], { hour12: false }) + "." + String(when.getMilliseconds()).padStart(3, "0");
    line.append(time);
    li.append(line);

    const body = el("div", "body");
    const desc = event.updateDescription;
    if (desc) {
      const diff = el("div", "diff");
      const before = event.fullDocumentBeforeChange;
      for (const [field, value] of Object.entries(desc.updatedFields || {})) {
        const d = el("div", "set");
        d.append("+ " + field + ": ");
        const old = before ? at(before, field) : undefined;
        if (old !== undefined) d.append(el("span", "old", show(old)));
        d.append(show(value));
        diff.append(d);
      }
      for (const field of desc.removedFields || []) {
        diff.append(el("div", "unset", "− " + field));
      }
      for (const t of desc.truncatedArrays || []) {
        diff.append(el("div", "trunc", "~ " + t.field + " truncated to " + show(t.newSize)));
      }
      body.append(diff);
      if (event.fullDocument) body.append(el("div", "doc", "now " + show(event.fullDocument)));
    } else if (event.fullDocument) {
      body.append(el("div", "doc", show(event.fullDocument)));
    } else if (event.fullDocumentBeforeChange) {
      body.append(el("div", "doc", "was " + show(event.fullDocumentBeforeChange)));
    }
    if (body.childElementCount) li.append(body);

    const details = el("details");
    details.append(el("summary", null, "event"));
    details.append(el("pre", null, JSON.stringify(event, null, 2)));
    li.append(details);
    return li;
  }

  function addNotice(text) {
    const li = el("li", "event error", text);
    eventsEl.prepend(li);
  }

  function colour(op) {
    const style = getComputedStyle(document.documentElement);
    return style.getPropertyValue(COLOURS[op] || "--other").trim() || "#7a8294";
  }

  function renderCounts() {
    countsEl.replaceChildren();
    const ops = [...state.counts.keys()].sort((a, b) => OPERATIONS.indexOf(a) - OPERATIONS.indexOf(b));
    for (const op of ops) {
      const li = el("li");
      li.style.setProperty("--op", colour(op));
      li.append(el("span", null, op), el("span", null, String(state.counts.get(op))));
      countsEl.append(li);
    }
  }

  // ---- the chart ---------------------------------------------------------------------------

  /** Moves the per-second buckets up to the current second. */
  function tick() {
    const now = Math.floor(Date.now() / 1000);
    const steps = Math.min(SECONDS, now - state.bucketSecond);
    for (let i = 0; i < steps; i++) {
      state.buckets.shift();
      state.buckets.push(new Map());
    }
    if (steps > 0) state.bucketSecond = now;
  }

  function queueDraw() {
    if (state.drawQueued) return;
    state.drawQueued = true;
    requestAnimationFrame(() => {
      state.drawQueued = false;
      draw();
    });
  }

  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 720, height = canvas.clientHeight || 110;
    if (canvas.width !== Math.round(width * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const totals = state.buckets.map((b) => [...b.values()].reduce((s, n) => s + n, 0));
    const peak = Math.max(1, ...totals);
    // A round scale: 1, 2, 5, 10, 20, 50...
    const power = Math.pow(10, Math.floor(Math.log10(peak)));
    const scale = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= peak);
    const left = 34, bottom = height - 14, top = 6;
    const plot = bottom - top;
    g.font = "10px system-ui, sans-serif";
    g.fillStyle = "#687083";
    g.strokeStyle = "#dde1e8";
    g.lineWidth = 1;
    for (const frac of [0, 0.5, 1]) {
      const y = Math.round(bottom - frac * plot) + 0.5;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(width, y);
      g.stroke();
      g.fillText(String(scale * frac), 4, y + 3);
    }
    g.fillText("-60 s", left, height - 2);
    g.fillText("now", width - 22, height - 2);
    const slot = (width - left) / SECONDS;
    state.buckets.forEach((bucket, i) => {
      let y = bottom;
      const ops = [...bucket.keys()].sort((a, b) => OPERATIONS.indexOf(a) - OPERATIONS.indexOf(b));
      for (const op of ops) {
        const h = (bucket.get(op) / scale) * plot;
        g.fillStyle = colour(op);
        g.fillRect(left + i * slot + 1, y - h, Math.max(1, slot - 2), h);
        y -= h;
      }
    });
  }

  setInterval(() => {
    tick();
    draw();
  }, 1000);

  // ---- controls ----------------------------------------------------------------------------

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const query = readForm();
    if (query.coll && !query.db) {
      setStatus("failed", "a collection needs its database");
      return;
    }
    if (query.match) {
      try {
        const parsed = JSON.parse(query.match);
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
      } catch (err) {
        setStatus("failed", "$match is not a JSON object");
        return;
      }
    }
    state.query = query;
    state.paused = false;
    setLastId(null);
    $("scope").textContent = describe(query);
    history.replaceState(null, "", "#" + new URLSearchParams(query).toString());
    open(null);
  });

  pauseButton.addEventListener("click", () => {
    if (!state.query) return;
    if (state.paused) {
      // Resume exactly after the last event (or heartbeat) received.
      state.paused = false;
      open(state.lastId);
    } else {
      state.paused = true;
      close();
      setStatus("paused", "paused");
    }
  });

  $("clear").addEventListener("click", () => {
    eventsEl.replaceChildren();
    state.counts.clear();
    state.buckets = Array.from({ length: SECONDS }, () => new Map());
    renderCounts();
    draw();
  });

  // A link with the form in its hash (`#db=app&coll=events`) starts watching at once.
  if (location.hash.length > 1) {
    const saved = new URLSearchParams(location.hash.slice(1));
    for (const name of ["db", "coll", "match", "fullDocument", "fullDocumentBeforeChange"]) {
      if (saved.has(name)) $(name).value = saved.get(name);
    }
    form.requestSubmit();
  }
  draw();
})();
