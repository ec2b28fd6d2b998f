// The Embed dialog: the copy-paste <iframe> snippet for the current view and its plain link. The
// snippet comes from our own /oembed endpoint (one source for the iframe HTML), the preview is that
// very iframe, resized by the height message the embed posts, as a host page would.

import { $, publicOrigin, publicURL } from "./dom.js";

const dialog = $("share");
let current = null;  // {embed: URL to pass to /oembed, link: the plain link, views: bool}
let request = 0;

// openEmbed({embed, link, views}): embed = an attnscope URL (a full page or /embed/...), link = what
// "Link to this view" shows (default: embed), views = offer arrows/heatmap/grid (the explorer).
export function openEmbed({ embed, link = embed, views = false }) {
  current = { embed, link, views };
  $("share-views").hidden = !views;
  $("share-status").textContent = "";
  if (!dialog.open) dialog.showModal();
  update();
}

function embedURL() {
  const url = publicURL(current.embed);
  if (current.views) url.pathname = `/embed/${dialog.querySelector('input[name="share-view"]:checked').value}`;
  url.searchParams.delete("theme");
  url.searchParams.delete("static");
  if ($("share-theme").value !== "auto") url.searchParams.set("theme", $("share-theme").value);
  if ($("share-static").checked) url.searchParams.set("static", "1");
  return url.href;
}

async function update() {
  const mine = ++request;
  const err = $("share-error");
  try {
    const r = await fetch(`/oembed?${new URLSearchParams({ url: embedURL(), format: "json" })}`);
    const o = await r.json();
    if (mine !== request) return;
    if (!r.ok) throw new Error(o.detail || `oEmbed failed (${r.status})`);
    err.hidden = true;
    $("share-html").value = o.html;
    $("share-link").value = publicURL(current.link).href;
    preview(o.html);
  } catch (e) {
    if (mine !== request) return;
    err.hidden = false;
    err.textContent = `No embed for this view: ${e.message}`;
  }
}

// The snippet's own iframe (parsed, never inserted as HTML), sized by its height messages.
function preview(html) {
  const src = new DOMParser().parseFromString(html, "text/html").querySelector("iframe");
  const frame = document.createElement("iframe");
  for (const name of ["src", "title", "height", "loading"]) frame.setAttribute(name, src.getAttribute(name));
  frame.className = "share-frame";
  $("share-preview").replaceChildren(frame);
}

window.addEventListener("message", (e) => {
  const frame = $("share-preview")?.querySelector("iframe");
  if (frame && e.source === frame.contentWindow && e.data?.context === "iframe.resize"
      && (e.origin === location.origin || e.origin === new URL(publicOrigin()).origin))
    frame.style.height = `${Math.min(e.data.height, 900)}px`;
});

async function copy(id) {
  const field = $(id);
  try {
    await navigator.clipboard.writeText(field.value);
  } catch {  // no clipboard API (plain http on another host): select it and use the old command
    field.select();
    document.execCommand("copy");
  }
  $("share-status").textContent = id === "share-html" ? "HTML copied" : "Link copied";
}

if (dialog) {
  for (const b of dialog.querySelectorAll(".share-copy")) b.addEventListener("click", () => copy(b.dataset.copy));
  for (const input of dialog.querySelectorAll('input[name="share-view"], #share-theme, #share-static'))
    input.addEventListener("change", update);
  dialog.addEventListener("close", () => $("share-preview").replaceChildren());  // stop the preview's work
  // the page's own Embed button: the current URL (every page mirrors its state in it)
  // (the explorer's store writes its URL a moment after each change: ask it directly)
  $("embed-open")?.addEventListener("click", () => {
    const query = window.attnscope?.store?.query();
    const here = query === undefined ? location.href : `${location.origin}${location.pathname}?${query}`;
    openEmbed({ embed: here, views: location.pathname === "/" });
  });
}
