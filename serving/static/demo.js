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
        ? el("div", { className: "products" }, layer.products.map((p, i) => LookSync.productCard(p, i + 1)))
        : el("p", { text: "no products" }),
    ));
    const summary = el("div", { className: "summary" },
      el("div", {}, el("h3", { text: "Timings per stage" }), LookSync.timings(response)),
      el("div", {}, el("h3", { text: "Degraded" }), LookSync.degraded(response)));
    results.replaceChildren(meta, summary, ...layers);
  }

  async function search(event) {
    event.preventDefault();
    results.replaceChildren(el("p", { className: "busy", text: "searching..." }));
    try {
      const look = await LookSync.chosenLook($("look-file"), $("sample-look"));
      $("look-preview").src = URL.createObjectURL(look.file);
      const params = { k: Number($("k").value) || 5 };
      if ($("market").value) params.market = $("market").value;
      render(await LookSync.searchLook(look.file, params));
    } catch (err) {
      LookSync.showError(results, err);
    }
  }

  LookSync.keyBox($("api-key"), () => LookSync.loadSampleLooks($("sample-look"), $("looks-status")));
  LookSync.loadSampleLooks($("sample-look"), $("looks-status"));
  $("search-form").addEventListener("submit", search);
})();
