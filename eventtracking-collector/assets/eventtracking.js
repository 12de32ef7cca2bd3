/* eventtracking.js: the browser tracker of eventtracking-collector, served at
 * /v1/tracker.js; documented in the crate docs. No dependencies.
 *
 *   eventtracking.init({endpoint: "https://collector.example.com", key: "wk_...", context: {app: "shop"}});
 *   eventtracking.enterContext("checkout", {cart_id: "c1"});
 *   eventtracking.emit("checkout.started", {items: 3});
 *   eventtracking.exitContext("checkout");
 *   eventtracking.flush().then(function (r) { ... }); // {delivered, dropped, pending}
 *
 * Events stay in a bounded localStorage queue until answered 202 (so they
 * survive a reload). A beaconed event stays stored (a beacon's answer cannot
 * be read): the next page load sends it again under the same id.
 */
(function (global) {
  "use strict";
  var BATCH = 20, LINGER_MS = 1000, MAX_QUEUE = 1000;
  var FIRST_BACKOFF_MS = 1000, MAX_BACKOFF_MS = 30000;

  var config = null;
  var stack = [];    // [{name, value}], outermost first
  var queue = [];    // [{e: event, b: beaconed}], oldest first; mirrors the store
  var finished = {}; // ids answered for good: never written back to the store
  var waiters = [];  // flush() promises: {ids, left, result, resolve}
  var inflight = {}; // ids of the batch being POSTed
  var timer = null, sending = false, attempt = 0, size = BATCH; // halved after a 413
  var notBefore = 0, retryAfterUntil = 0; // backoff; the collector's own Retry-After

  function warn(message, detail) {
    if (global.console) console.warn("eventtracking: " + message, detail === undefined ? "" : detail);
  }

  // UUIDv7: 48 bits of Unix milliseconds, then random bits (RFC 9562).
  function uuidv7() {
    var b = new Uint8Array(16), ms = Date.now(), i, hex = "";
    crypto.getRandomValues(b);
    for (i = 5; i >= 0; i--) { b[i] = ms % 256; ms = Math.floor(ms / 256); }
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    for (i = 0; i < 16; i++) hex += (b[i] + 0x100).toString(16).slice(1);
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
      hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function storeKey() { return "eventtracking:" + config.endpoint; }

  function load() {
    try { return JSON.parse(localStorage.getItem(storeKey()) || "[]"); } catch (e) { return []; }
  }

  // Writes the queue, keeping what another tab of this origin stored meanwhile.
  function save() {
    var mine = {}, all = queue.map(function (q) { mine[q.e.id] = true; return q.e; });
    load().forEach(function (e) { if (e && !mine[e.id] && !finished[e.id]) all.push(e); });
    try { localStorage.setItem(storeKey(), JSON.stringify(all.slice(-MAX_QUEUE))); } catch (e) {
      warn("could not store the queue (events are kept in memory only)", e);
    }
  }

  function assign(out, obj) { for (var k in obj) out[k] = obj[k]; return out; }

  function merged(base) {
    var out = assign({}, base);
    for (var i = 0; i < stack.length; i++) assign(out, stack[i].value);
    return out;
  }

  function init(options) {
    if (!options || !options.endpoint) throw new Error("eventtracking.init: `endpoint` is required");
    config = {
      endpoint: String(options.endpoint).replace(/\/+$/, ""),
      key: options.key || "",
      context: assign({}, options.context)
    };
    queue = load().map(function (e) { return { e: e, b: false }; });
    if (queue.length) schedule(0);
  }

  // A copy, as the Rust contexts: later changes to `value` do not leak in.
  function enterContext(name, value) { stack.push({ name: String(name), value: assign({}, value) }); }

  // Removes the innermost context of that name.
  function exitContext(name) {
    for (var i = stack.length - 1; i >= 0; i--) if (stack[i].name === name) { stack.splice(i, 1); return; }
    warn("exitContext: no context named " + name);
  }

  function emit(name, data) {
    if (!config) throw new Error("eventtracking.emit: call eventtracking.init first");
    var event = {
      name: String(name), data: data || {}, context: merged(config.context),
      id: uuidv7(), timestamp: new Date().toISOString()
    };
    queue.push({ e: event, b: false });
    while (queue.length > MAX_QUEUE) {
      var old = queue.shift();
      warn("queue full: dropped the oldest event", old.e.name);
      settle([old.e.id], "dropped");
    }
    save();
    if (unsent().length >= BATCH) schedule(0);
    else if (!timer) schedule(LINGER_MS); // the first event of a batch waits at most 1 s
    return event.id;
  }

  function unsent() { return queue.filter(function (q) { return !q.b && !inflight[q.e.id]; }); }

  function schedule(delay) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () { timer = null; send(); }, Math.max(delay, notBefore - Date.now(), 0));
  }

  // Marks ids answered: they leave the queue unless `outcome` is "pending".
  function settle(ids, outcome) {
    var set = {};
    ids.forEach(function (id) { set[id] = true; if (outcome !== "pending") finished[id] = true; });
    if (outcome !== "pending") queue = queue.filter(function (q) { return !set[q.e.id]; });
    waiters = waiters.filter(function (w) {
      ids.forEach(function (id) { if (w.ids[id]) { delete w.ids[id]; w.left--; w.result[outcome]++; } });
      if (w.left > 0) return true;
      w.resolve(w.result);
      return false;
    });
  }

  function retryLater(retryAfter) { // after a network error, 408, 429 or 5xx
    var wait = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * Math.pow(2, attempt++));
    wait = wait / 2 + Math.random() * wait / 2;
    var seconds = parseInt(retryAfter, 10);
    if (seconds > 0) retryAfterUntil = Date.now() + seconds * 1000;
    notBefore = Math.max(Date.now() + wait, retryAfterUntil);
    schedule(0);
  }

  function send() {
    var batch = unsent().slice(0, size).map(function (q) { return q.e; });
    if (sending || !batch.length) return;
    sending = true;
    var ids = batch.map(function (e) { inflight[e.id] = true; return e.id; });
    var body = JSON.stringify({ events: batch });
    fetch(config.endpoint + "/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Eventtracking-Key": config.key },
      body: body,
      // A keepalive request outlives the page, so the beacon leaves it out;
      // browsers allow 64 KiB of them in flight (up to 3 bytes a character).
      keepalive: body.length < 20000
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        answered(response.status, response.headers.get("Retry-After"), body || {}, ids);
      });
    }, function (error) {
      warn("collector unreachable, will retry", error && error.message);
      settle(ids, "pending");
      retryLater(null);
    }).then(done, function (error) { warn("internal error", error); done(); });
    function done() {
      sending = false;
      inflight = {};
      save();
      if (unsent().length && !timer) schedule(0);
    }
  }

  function answered(status, retryAfter, body, ids) {
    var rejected = body.rejected || [], refused = [], retry = [];
    if (status === 413 && ids.length > 1) { // too large: send halves, down to one event
      size = Math.ceil(ids.length / 2);
      settle(ids, "pending");
    } else if (status === 202 || status === 422) {
      attempt = 0;
      size = Math.min(BATCH, size * 2);
      rejected.forEach(function (r) { refused.push(ids[r.index]); warn("event refused: " + r.error, r.pointer); });
      settle(ids.filter(function (id) { return refused.indexOf(id) < 0; }), "delivered");
      settle(refused, "dropped");
    } else if (status === 503 && typeof body.accepted === "number" && rejected.length) {
      // Taken in part: what is listed must be sent again.
      rejected.forEach(function (r) { retry.push(ids[r.index]); });
      settle(ids.filter(function (id) { return retry.indexOf(id) < 0; }), "delivered");
      settle(retry, "pending");
      retryLater(retryAfter);
    } else if (status === 429 || status === 408 || status >= 500) {
      settle(ids, "pending");
      retryLater(retryAfter);
    } else {
      warn("collector answered " + status + ", dropping " + ids.length + " events", body.error);
      settle(ids, "dropped");
    }
  }

  // Sends everything queued now, Retry-After permitting; settles with
  // {delivered, dropped, pending} once each of those events was answered.
  function flush() {
    if (!config || !queue.length) return Promise.resolve({ delivered: 0, dropped: 0, pending: 0 });
    var waiter = { ids: {}, left: 0, result: { delivered: 0, dropped: 0, pending: 0 } };
    queue.forEach(function (q) {
      if (q.b) { waiter.result.pending++; return; } // beaconed: no answer will come
      waiter.ids[q.e.id] = true; waiter.left++;
    });
    if (!waiter.left) return Promise.resolve(waiter.result);
    return new Promise(function (resolve) {
      waiter.resolve = resolve;
      waiters.push(waiter);
      notBefore = retryAfterUntil; // skip the backoff, not the collector's Retry-After
      schedule(0);
    });
  }

  // The page may never run a timer again: hand what is unsent to the browser.
  function beacon() {
    if (!config || !navigator.sendBeacon) return;
    var pending = unsent();
    for (var i = 0; i < pending.length; i += BATCH) {
      var chunk = pending.slice(i, i + BATCH);
      var url = config.endpoint + "/v1/events?key=" + encodeURIComponent(config.key);
      if (!navigator.sendBeacon(url, JSON.stringify({ events: chunk.map(function (q) { return q.e; }) }))) break;
      chunk.forEach(function (q) { q.b = true; });
      settle(chunk.map(function (q) { return q.e.id; }), "pending");
    }
  }

  global.addEventListener("pagehide", beacon);
  global.document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") beacon();
  });

  global.eventtracking = {
    init: init, emit: emit, enterContext: enterContext, exitContext: exitContext, flush: flush
  };
})(window);
