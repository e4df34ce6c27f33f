/* Shared by the LookSync pages: the API key (kept in sessionStorage), JSON calls to the public API,
   the look picker, and DOM building with textContent only (nothing from data goes through innerHTML). */
"use strict";

const LookSync = (() => {
  const KEY = "looksync.apiKey";

  function apiKey() { return sessionStorage.getItem(KEY) || ""; }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "className") node.className = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(`${status} ${code}: ${message}`);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    if (apiKey()) headers.set("X-API-Key", apiKey());
    const response = await fetch(path, { ...options, headers });
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok) {
      let code = "error", message = response.statusText;
      if (type.includes("json")) {
        const body = await response.json().catch(() => ({}));
        code = body.error?.code || code;
        message = body.error?.message || message;
      }
      if (response.status === 401) message += " (enter the API key above)";
      throw new ApiError(response.status, code, message);
    }
    return type.includes("json") ? response.json() : response.blob();
  }

  /* The API key box: fills from sessionStorage, saves on change. */
  function keyBox(input, saved) {
    input.value = apiKey();
    input.form?.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      if (saved) saved();
    });
  }

  function showError(target, err) {
    target.replaceChildren(el("p", { className: "error", role: "alert", text: err.message || String(err) }));
  }

  /* Sample looks into a <select>; an empty list or a refused call says why in `status`. */
  async function loadSampleLooks(select, status) {
    select.replaceChildren(el("option", { value: "", text: "- pick a sample look -" }));
    try {
      const body = await api("/v1/sample-looks");
      for (const look of body.looks) select.append(el("option", { value: look.look_id, text: look.look_id }));
      status.textContent = body.looks.length ? `${body.looks.length} sample looks` : (body.note || "no sample looks");
    } catch (err) {
      status.textContent = `sample looks unavailable: ${err.message}`;
    }
  }

  /* The chosen look as {file, lookId}: the uploaded file wins over the sample list. */
  async function chosenLook(fileInput, select) {
    if (fileInput.files.length) {
      const file = fileInput.files[0];
      return { file, lookId: file.name.replace(/\.[^.]*$/, "").slice(0, 200) }; // the API's look_id limit
    }
    if (!select.value) throw new Error("choose a look: upload an image or pick a sample look");
    const blob = await api(`/v1/sample-looks/${encodeURIComponent(select.value)}`);
    return { file: new File([blob], `${select.value}.png`, { type: blob.type }), lookId: select.value };
  }

  async function sha256Hex(file) {
    if (!window.crypto?.subtle) return null; // only in secure contexts (https, localhost)
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function searchLook(file, params) {
    const form = new FormData();
    form.append("image", file);
    form.append("params", JSON.stringify(params));
    return api("/v1/looks/search", { method: "POST", body: form });
  }

  function safeUrl(url) {
    try {
      const parsed = new URL(url, window.location.href);
      return ["http:", "https:"].includes(parsed.protocol) ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  function price(product) {
    if (product.price === null || product.price === undefined) return "price unknown";
    return `${Number(product.price).toFixed(2)} ${product.currency || ""}`.trim();
  }

  /* The card's picture: the thumbnail this service keeps (it stays when the vendor's host does not), else
     the vendor's image; a thumbnail that fails to load (none stored yet) gives way to the vendor's image. */
  function productImage(product) {
    const thumbnail = safeUrl(product.thumbnail_url);
    const vendor = safeUrl(product.image_url);
    if (!thumbnail && !vendor) return el("div", { className: "noimage", text: "no image" });
    const img = el("img", { src: thumbnail || vendor, alt: product.title || product.product_id, loading: "lazy",
                            "data-source": thumbnail ? "thumbnail" : "vendor" });
    if (thumbnail && vendor) {
      img.addEventListener("error", () => { img.dataset.source = "vendor"; img.src = vendor; }, { once: true });
    }
    return img;
  }

  /* The product card both pages show: image, title, brand, price, scores. */
  function productCard(product, rank) {
    const link = safeUrl(product.product_url);
    const title = el("span", { className: "title", text: product.title || product.product_id });
    const scores = [`score ${Number(product.score).toFixed(3)}`];
    if (product.rerank_score !== undefined) scores.push(`rerank ${Number(product.rerank_score).toFixed(3)}`);
    return el("article", { className: "product", "data-product-id": product.product_id },
      productImage(product),
      el("div", { className: "rank", text: `#${rank}` }),
      link ? el("a", { href: link, target: "_blank", rel: "noopener noreferrer" }, title) : title,
      el("div", { className: "brand", text: product.brand || "" }),
      el("div", { className: "price", text: price(product) }),
      el("div", { className: "scores", text: scores.join(" · ") }),
    );
  }

  function timings(response) {
    const rows = Object.entries(response.timings_ms || {}).map(([stage, ms]) =>
      el("tr", {}, el("td", { text: stage }), el("td", { text: `${Number(ms).toFixed(1)} ms` })));
    return el("table", { className: "timings" }, el("thead", {}, el("tr", {}, el("th", { text: "stage" }),
      el("th", { text: "time" }))), el("tbody", {}, rows));
  }

  function degraded(response) {
    const notes = response.degraded || [];
    if (!notes.length) return el("p", { className: "ok", text: "no degraded notes" });
    return el("ul", { className: "degraded" }, notes.map((note) => el("li", { text: note })));
  }

  return { api, apiKey, chosenLook, degraded, el, keyBox, loadSampleLooks, price, productCard, safeUrl, searchLook,
           sha256Hex, showError, timings };
})();
