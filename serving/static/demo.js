/* /demo: search a look through the public API and show per layer the query, products, timings, notes. */
"use strict";

(() => {
  const { el } = LookSync;
  const $ = (id) => document.getElementById(id);
  const results = $("results");

  function render(response) {
    const meta = el("p", { className: "meta", id: "meta" },
      `model ${response.model_id} · index ${response.index_version} · query source ${response.query_source}`
      + ` · rerank ${response.rerank} · cache ${response.cache}`);
    const layers = response.layers.map((layer) => el("section", { className: "layer", "data-layer": layer.layer },
      el("h2", { text: layer.layer }),
      el("p", { className: "query" }, "query: ", el("q", { text: layer.query }), ` (${layer.query_source})`),
      layer.products.length
        ? el("div", { className: "products" },
          layer.products.map((p, i) => withPurchase(withOffers(withMatch(LookSync.productCard(p, i + 1), p), p), p)))
        : el("p", { text: "no products" }),
    ));
    const outfit = response.outfit ? [outfitSection(response.outfit)] : [];
    const summary = el("div", { className: "summary" },
      el("div", {}, el("h3", { text: "Timings per stage" }), LookSync.timings(response)),
      el("div", {}, el("h3", { text: "Degraded" }), LookSync.degraded(response)));
    const preferences = response.preferences ? [preferencesLine(response.preferences)] : [];
    results.replaceChildren(meta, ...preferences, ...outfit, summary, ...layers);
  }

  /* What the shopper's profile did to this answer, as the API says. */
  function preferencesLine(prefs) {
    const text = prefs.applied.length
      ? `preferences of ${prefs.shopper_id} applied: ${prefs.applied.join(", ")} (boost at most ${prefs.max_boost})`
      : `no preferences of ${prefs.shopper_id} applied${prefs.note ? `: ${prefs.note}` : ""}`;
    return el("p", { className: "preferences", id: "preferences", "data-applied": prefs.applied.join(","), text });
  }

  /* With a shopper id: a button that records a purchase of this product for the shopper (POST /v1/events). */
  function withPurchase(card, product) {
    const shopper = $("shopper").value.trim();
    if (!shopper) return card;
    const button = el("button", { type: "button", className: "buy", text: "bought" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await LookSync.api("/v1/events", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ events: [{ shopper_id: shopper, product_id: product.product_id, type: "purchase" }] }),
        });
        button.textContent = "recorded";
        card.dataset.bought = "true";
      } catch (err) {
        button.disabled = false;
        button.textContent = "not recorded";
        button.title = String(err.message || err);
      }
    });
    card.append(button);
    return card;
  }

  /* Why it matches: a chip per attribute read from the look (agreeing or not) and the score parts.
     Only on this page: judges on /judge rate without the system's own explanation. */
  function withMatch(card, product) {
    const match = product.match;
    if (!match) return card;
    const chips = match.attributes.map((a) => {
      const value = Array.isArray(a.product) ? a.product.join("/") : a.product;
      const text = a.agrees ? `${a.name}: ${a.look}` : `${a.name}: ${a.look} vs ${value}`;
      return el("li", { className: `chip ${a.agrees ? "agrees" : "differs"}`, "data-attribute": a.name, text });
    });
    const parts = Object.entries(match.score).filter(([name]) => name !== "text_weight")
      .map(([name, value]) => `${name} ${Number(value).toFixed(3)}`).join(" · ");
    card.append(el("ul", { className: "match" }, chips), el("div", { className: "score-parts", text: parts }));
    return card;
  }

  /* One card per item: where else it is sold, as the API orders the offers (the best in-stock offer in the
     chosen market first), each linking to the shop's page. */
  function withOffers(card, product) {
    const offers = product.offers || [];
    if (!offers.length) return card;
    const items = offers.map((o) => {
      const text = `${o.vendor} · ${o.market} · ${LookSync.price(o)} · ${o.in_stock ? "in stock" : "out of stock"}`;
      const link = LookSync.safeUrl(o.product_url);
      return el("li", { className: `offer ${o.in_stock ? "in-stock" : "out-of-stock"}`, "data-product-id": o.product_id },
        link ? el("a", { href: link, target: "_blank", rel: "noopener noreferrer", text }) : text);
    });
    card.dataset.groupId = product.group_id;
    card.append(el("details", { className: "offers-box", open: true },
      el("summary", { text: `${offers.length} offers` }), el("ol", { className: "offers" }, items)));
    return card;
  }

  function outfitSection(outfit) {
    const money = (amount) => `${Number(amount).toFixed(2)} ${outfit.currency}`;
    const head = outfit.within_budget
      ? `total ${money(outfit.total)} within ${money(outfit.budget)} · summed score ${Number(outfit.score).toFixed(3)}`
      : `over budget: the cheapest outfit costs ${money(outfit.total)} (budget ${money(outfit.budget)})`;
    return el("section", { className: "outfit", id: "outfit", "data-within-budget": String(outfit.within_budget) },
      el("h2", { text: "Outfit within your budget" }),
      el("p", { className: "outfit-total", text: head }),
      outfit.note ? el("p", { className: "note", text: outfit.note }) : null,
      ...outfit.missing_layers.map((m) => el("p", { className: "missing", text: `${m.layer}: ${m.reason}` })),
      el("div", { className: "products" }, outfit.items.map((p) => {
        const card = LookSync.productCard(p, 0);
        card.querySelector(".rank").textContent = p.layer;
        return card;
      })));
  }

  function selectedCurrency() {
    const option = $("market").selectedOptions[0];
    return option ? option.dataset.currency || "" : "";
  }

  async function search(event) {
    event.preventDefault();
    results.replaceChildren(el("p", { className: "busy", text: "searching..." }));
    try {
      const look = await LookSync.chosenLook($("look-file"), $("sample-look"));
      $("look-preview").src = URL.createObjectURL(look.file);
      const params = { k: Number($("k").value) || 5 };
      if ($("market").value) params.market = $("market").value;
      if ($("shopper").value.trim()) params.shopper_id = $("shopper").value.trim();
      if ($("budget").value !== "") {
        if (!params.market) throw new Error("choose a market for an outfit budget: prices are compared in its currency");
        params.outfit = { budget: Number($("budget").value), currency: selectedCurrency() };
      }
      render(await LookSync.searchLook(look.file, params));
    } catch (err) {
      LookSync.showError(results, err);
    }
  }

  LookSync.keyBox($("api-key"), () => LookSync.loadSampleLooks($("sample-look"), $("looks-status")));
  LookSync.loadSampleLooks($("sample-look"), $("looks-status"));
  $("search-form").addEventListener("submit", search);
  $("market").addEventListener("change", () => { $("budget-currency").textContent = selectedCurrency(); });
})();
