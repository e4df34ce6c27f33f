/* /judge: show a look's per-layer results and collect 1-5 ratings per criterion; POST /v1/judgments. */
"use strict";

(() => {
  const { el } = LookSync;
  const $ = (id) => document.getElementById(id);
  const CRITERIA = ["colour", "fit", "sleeve", "fabric", "pattern", "overall"];
  const JUDGE = "looksync.judgeId";
  const results = $("results");
  let current = null; // {response, lookId, sha256}

  function scoreSelect(productId, criterion) {
    const select = el("select", { name: `${productId}:${criterion}`, "data-criterion": criterion,
      "aria-label": `${criterion} of ${productId}` });
    select.append(el("option", { value: "", text: "-" }));
    if (criterion !== "overall") select.append(el("option", { value: "na", text: "n/a" }));
    for (let s = 1; s <= 5; s++) select.append(el("option", { value: String(s), text: String(s) }));
    return el("label", { className: "criterion" }, el("span", { text: criterion }), select);
  }

  function ratingCard(layer, product, rank) {
    const card = LookSync.productCard(product, rank);
    card.dataset.layer = layer.layer;
    card.dataset.rank = String(rank);
    card.append(el("div", { className: "ratings" }, CRITERIA.map((c) => scoreSelect(product.product_id, c))));
    return card;
  }

  function render() {
    const { response } = current;
    const layers = response.layers.map((layer) => el("section", { className: "layer", "data-layer": layer.layer },
      el("h2", { text: layer.layer }),
      el("p", { className: "query" }, "query: ", el("q", { text: layer.query })),
      el("div", { className: "products" }, layer.products.map((p, i) => ratingCard(layer, p, i + 1))),
    ));
    results.replaceChildren(
      el("p", { className: "meta", text: `look ${current.lookId} · model ${response.model_id} · index ${response.index_version}` }),
      el("p", { className: "hint", text: "Rate each match 1 (bad) to 5 (good); products without an overall score are not sent." }),
      ...layers,
      el("button", { type: "button", id: "submit-ratings", text: "Submit ratings" }),
      el("p", { id: "submit-status", role: "status" }),
    );
    $("submit-ratings").addEventListener("click", submit);
  }

  function collect() {
    const queries = Object.fromEntries(current.response.layers.map((l) => [l.layer, l.query]));
    const ratings = [];
    for (const card of results.querySelectorAll("article.product")) {
      const scores = {};
      for (const select of card.querySelectorAll("select[data-criterion]")) {
        const v = select.value;
        scores[select.dataset.criterion] = v === "" || v === "na" ? null : Number(v);
      }
      if (scores.overall === null) continue;
      ratings.push({ layer: card.dataset.layer, product_id: card.dataset.productId, rank: Number(card.dataset.rank),
                     query_text: queries[card.dataset.layer], scores });
    }
    return ratings;
  }

  async function submit() {
    const status = $("submit-status");
    const judgeId = $("judge-id").value.trim();
    const ratings = collect();
    if (!judgeId) { status.textContent = "enter your judge id first"; status.className = "error"; return; }
    if (!ratings.length) { status.textContent = "give at least one product an overall score"; status.className = "error"; return; }
    const body = { judge_id: judgeId, look_id: current.lookId, model_id: current.response.model_id,
                   index_version: current.response.index_version, ratings };
    if (current.sha256) body.look_sha256 = current.sha256;
    try {
      const saved = await LookSync.api("/v1/judgments", { method: "POST", headers: { "Content-Type": "application/json" },
                                                            body: JSON.stringify(body) });
      status.className = "ok";
      status.replaceChildren(`saved ${saved.count} rating(s) (ids ${saved.ids.join(", ")}) - `,
        el("a", { href: "/judge/report", text: "see the report" }));
    } catch (err) {
      status.className = "error";
      status.textContent = err.message;
    }
  }

  async function load(event) {
    event.preventDefault();
    results.replaceChildren(el("p", { className: "busy", text: "searching..." }));
    try {
      const look = await LookSync.chosenLook($("look-file"), $("sample-look"));
      $("look-preview").src = URL.createObjectURL(look.file);
      const response = await LookSync.searchLook(look.file, { k: Number($("k").value) || 5 });
      current = { response, lookId: look.lookId, sha256: await LookSync.sha256Hex(look.file) };
      render();
    } catch (err) {
      LookSync.showError(results, err);
    }
  }

  $("judge-id").value = localStorage.getItem(JUDGE) || "";
  $("judge-id").addEventListener("change", () => localStorage.setItem(JUDGE, $("judge-id").value.trim()));
  LookSync.keyBox($("api-key"), () => LookSync.loadSampleLooks($("sample-look"), $("looks-status")));
  LookSync.loadSampleLooks($("sample-look"), $("looks-status"));
  $("look-form").addEventListener("submit", load);
})();
