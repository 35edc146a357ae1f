/* The capture page's calls to the API, with the session cookie. Every write carries the CSRF token,
 * the entry's Idempotency-Key (made when the entry was made, so a resend is recognised) and, when
 * known, the device's position for the audit trail (X-Device-Position: lon,lat,accuracy).
 * An answer resolves as {status, body, headers}; only a failed connection rejects (error.network). */
(function () {
  "use strict";

  const util = window.SaferCapture.util;

  function request(url, options) {
    options = options || {};
    const method = (options.method || "GET").toUpperCase();
    const headers = Object.assign({ Accept: "application/json, application/problem+json" }, options.headers || {});
    const init = { method, credentials: "same-origin", headers, cache: "no-store" };
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    } else if (options.body !== undefined) {
      init.body = options.body;
    }
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = util.cookie("safermap_csrf");
    if (options.key) headers["Idempotency-Key"] = options.key;
    if (options.position) headers["X-Device-Position"] = options.position;
    if (options.timeout) init.signal = AbortSignal.timeout(options.timeout);
    return fetch(url, init).then((r) => {
      if (r.type === "opaqueredirect" || (r.redirected && !r.url.includes("/api/"))) {
        return { status: 401, body: { detail: "Your session has ended; sign in again." }, headers: r.headers };
      }
      return r.text().then((text) => {
        let body = {};
        try { body = text ? JSON.parse(text) : {}; } catch (e) { body = { detail: text.slice(0, 200) }; }
        return { status: r.status, body, headers: r.headers };
      });
    }, (e) => {
      const error = new Error(e && e.name === "TimeoutError" ? "No answer from the server in time."
        : "No connection to the server.");
      error.network = true;
      throw error;
    });
  }

  // The detail of a problem answer, for people.
  function problemText(answer) {
    const b = answer.body || {};
    return b.detail || b.title || ("The server answered " + answer.status + ".");
  }

  // A multipart body with a boundary made from the entry's key, so that a resent photo is
  // byte for byte the first one (the server compares the body under the same key).
  function multipart(key, blob, filename) {
    const boundary = "safermap-" + key.replace(/[^0-9a-zA-Z-]/g, "");
    const safeName = String(filename || "photo").replace(/[^\w.-]/g, "_").slice(0, 80) || "photo";
    const head = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + safeName +
      "\"\r\nContent-Type: " + (blob.type || "application/octet-stream") + "\r\n\r\n";
    const tail = "\r\n--" + boundary + "--\r\n";
    return { body: new Blob([head, blob, tail]), contentType: "multipart/form-data; boundary=" + boundary };
  }

  window.SaferCapture.api = { request, problemText, multipart };
})();
