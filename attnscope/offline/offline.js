// attnscope pack: the runtime of an offline snapshot (a classic script that runs before the page's own
// code, app.js; attnscope/pack.py writes it into every pack). The page is the app's, unchanged; here:
// - fetch() answers the page's API requests from the answers saved in the page (#attnscope-pack), the
//   numbers the server computed for this state; a request for any other state gets a 503 "offline"
//   answer that says why (window.attnscopePack.misses lists them);
// - history.replaceState/pushState keep this file's path (the pages write /explain?..., which a file://
//   page may not), the query as the page wrote it;
// - the controls that would ask the server for another state are disabled and say so, and the
//   explorer's store refuses a change that needs new data (a grid click, Page Down): a note says why;
// - a link to another page of the app goes to the server the URL named, or says it needs one.

(() => {
  "use strict";
  const pack = JSON.parse(document.getElementById("attnscope-pack").textContent);
  const NEEDS = "Needs the attnscope server (a new forward pass): this page is an offline snapshot of one state.";
  const misses = [], blocked = [];
  window.attnscopePack = { misses, blocked, page: pack.page };

  // ---- the API, from the answers saved -------------------------------------------------------------

  // JSON with sorted keys: the same body, whatever order the page wrote its fields in
  const sorted = (_, v) => (v && typeof v === "object" && !Array.isArray(v)
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v);
  const canon = (path, body) => JSON.stringify([path, body], sorted);
  const answers = new Map(pack.answers.map((a) => [canon(a.path, a.body), a]));
  const reply = (status, body) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

  window.fetch = async (input, init = {}) => {
    if (init.signal?.aborted) throw new DOMException("The operation was aborted.", "AbortError");
    const raw = typeof input === "string" ? input : input.url;
    const path = raw.startsWith("/") ? raw.split(/[?#]/)[0] : new URL(raw, location.href).pathname;
    let body = init.body ?? null;
    try { body = body === null ? null : JSON.parse(body); } catch { /* not JSON: matches nothing */ }
    const a = answers.get(canon(path, body));
    if (a) return reply(a.status, a.answer);
    misses.push({ path, body });
    say(`That needs the attnscope server: this snapshot holds only the numbers of ${pack.state}.`);
    return reply(503, { error: "offline", detail: `${NEEDS} It holds ${pack.state}; ${pack.needs} needs the server.` });
  };

  // ---- the URL: the page writes its state into it, on this file's path ----------------------------

  for (const name of ["replaceState", "pushState"]) {
    const original = history[name].bind(history);
    history[name] = (state, title, url) => {
      if (url === undefined || url === null) return original(state, title, url);
      const u = new URL(url, location.href);
      return original(state, title, location.pathname + u.search + u.hash);
    };
  }

  // ---- the note, and what says "needs the server" ---------------------------------------------------

  const make = (tag, props = {}, ...children) => {
    const e = Object.assign(document.createElement(tag), props);
    e.append(...children);
    return e;
  };
  const liveLink = (text = "open this state on the server") => (pack.live ? make("a", { href: pack.live, textContent: text }) : null);

  function note() {
    const head = make("p", {}, make("b", { textContent: "Offline snapshot" }), ` of ${pack.state} · saved by attnscope pack, ${pack.made}`);
    const more = make("p", { className: "pack-more" },
      `${pack.works[0].toUpperCase()}${pack.works.slice(1)} work here as on the live page, from the numbers saved. `,
      `${pack.needs[0].toUpperCase()}${pack.needs.slice(1)} needs a new forward pass: those controls are off.`);
    const live = liveLink();
    more.append(...(live ? [" With the server running (attnscope serve): ", live, "."] : [" For those, run attnscope serve and open the page there."]));
    const box = make("aside", { className: "pack-note", id: "pack-note" }, head, more);
    box.setAttribute("aria-label", "Offline snapshot");
    return box;
  }

  let toast = null, hide = 0;
  function say(text) {
    if (!toast) {
      toast = make("p", { className: "pack-toast", hidden: true });
      toast.setAttribute("role", "status");
      document.body.append(toast);
    }
    toast.replaceChildren(text);
    const live = liveLink("Open this state on the server");
    if (live) toast.append(" ", live, ".");
    toast.hidden = false;
    clearTimeout(hide);
    hide = setTimeout(() => (toast.hidden = true), 8000);
  }

  const selector = pack.controls.join(", ");
  function switchOff() {
    for (const c of document.querySelectorAll(selector)) {
      if (c.disabled && c.dataset.packOff) continue;
      c.disabled = true;
      c.dataset.packOff = "1";
      c.title = NEEDS;
    }
  }

  // a control the page made or enabled again (compare's +/- buttons, the explorer's off chips): off again
  new MutationObserver(switchOff).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["disabled"] });
  // and whatever still reaches one (a label, a script) is stopped before the page's handlers
  for (const type of ["input", "change", "click"]) {
    document.addEventListener(type, (e) => {
      if (!e.target.closest?.(selector)) return;
      e.preventDefault();
      e.stopImmediatePropagation();
      say(NEEDS);
    }, true);
  }

  // links to the app's other pages and files (/explain?..., /export/..., /docs)
  const inPack = (url) => url.protocol === "file:" && url.pathname.startsWith(location.pathname.replace(/[^/]*$/, ""));
  function away(path) {
    if (pack.server) location.href = pack.server + path;
    else say(`${path.split("?")[0]} is a page of the attnscope server: run attnscope serve to open it.`);
  }
  document.addEventListener("click", (e) => {
    const a = e.target.closest?.("a[href]");
    const href = a?.getAttribute("href") ?? "";
    if (!href.startsWith("/") || href.startsWith("//")) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    away(href);
  }, true);
  // a script that sets location (the head finder's chart): where the Navigation API lets us, the same
  window.navigation?.addEventListener("navigate", (e) => {
    const to = new URL(e.destination.url);
    if (to.protocol !== "file:" || inPack(to) || !e.cancelable) return;
    e.preventDefault();
    away(to.pathname + to.search);
  });

  // the explorer: a change of state that needs data it does not have is refused, and said
  function guardStore() {
    const store = window.attnscope?.store;
    if (!store || !pack.keep) return;
    const keep = new Set(pack.keep), set = store.set.bind(store);
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    store.set = (patch) => {
      const needs = Object.keys(patch).filter((k) => !keep.has(k) && !same(store.state[k], patch[k]));
      if (!needs.length) return set(patch);
      blocked.push(needs);
      say(`${NEEDS} It holds ${pack.state}.`);
      return false;
    };
  }

  // deferred like app.js and run before it: the page is parsed, its code has not run yet
  const main = document.querySelector("main");
  main?.before(note());
  switchOff();
  document.addEventListener("DOMContentLoaded", () => { guardStore(); switchOff(); });  // after app.js ran
})();
