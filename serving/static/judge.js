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

  function layerSections(response) {
    return response.layers.map((layer) => el("section", { className: "layer", "data-layer": layer.layer },
      el("h2", { text: layer.layer }),
      el("p", { className: "query" }, "query: ", el("q", { text: layer.query })),
      el("div", { className: "products" }, layer.products.map((p, i) => ratingCard(layer, p, i + 1))),
    ));
  }

  function render() {
    // blind comparison: sides A and B in the server's random order, no model named on the page
    const parts = current.sides
      ? [el("p", { className: "meta", text: `look ${current.lookId} · live and shadow, blind: sides A and B in a random order` }),
         el("div", { className: "sides" }, current.sides.map((side) => el("div", { className: "side", "data-side": side.side },
           el("h2", { text: `Side ${side.side}` }), ...layerSections(side))))]
      : [el("p", { className: "meta", text: `look ${current.lookId} · model ${current.response.model_id} · index ${current.response.index_version}` }),
         ...layerSections(current.response)];
    results.replaceChildren(
      ...parts,
      el("p", { className: "hint", text: "Rate each match 1 (bad) to 5 (good); products without an overall score are not sent." }),
      el("button", { type: "button", id: "submit-ratings", text: "Submit ratings" }),
      el("p", { id: "submit-status", role: "status" }),
    );
    $("submit-ratings").addEventListener("click", submit);
  }

  function collect(response, container) {
    const queries = Object.fromEntries(response.layers.map((l) => [l.layer, l.query]));
    const ratings = [];
    for (const card of container.querySelectorAll("article.product")) {
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

  function submissions(judgeId) {
    const shared = { judge_id: judgeId, look_id: current.lookId, ...(current.sha256 ? { look_sha256: current.sha256 } : {}) };
    if (current.sides) {  // one submission per side; its token tells the server which model the ratings are for
      return current.sides.map((side) => ({ ...shared, side_token: side.side_token,
        ratings: collect(side, results.querySelector(`div.side[data-side="${side.side}"]`)) })).filter((b) => b.ratings.length);
    }
    const ratings = collect(current.response, results);
    return ratings.length ? [{ ...shared, model_id: current.response.model_id, index_version: current.response.index_version, ratings }] : [];
  }

  async function submit() {
    const status = $("submit-status");
    const judgeId = $("judge-id").value.trim();
    if (!judgeId) { status.textContent = "enter your judge id first"; status.className = "error"; return; }
    const bodies = submissions(judgeId);
    if (!bodies.length) { status.textContent = "give at least one product an overall score"; status.className = "error"; return; }
    try {
      const ids = [];
      for (const body of bodies) {
        const saved = await LookSync.api("/v1/judgments", { method: "POST", headers: { "Content-Type": "application/json" },
                                                              body: JSON.stringify(body) });
        ids.push(...saved.ids);
      }
      status.className = "ok";
      status.replaceChildren(`saved ${ids.length} rating(s) (ids ${ids.join(", ")}) - `,
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
      const params = { k: Number($("k").value) || 5 };
      const sha256 = await LookSync.sha256Hex(look.file);
      if ($("blind-compare").checked) {
        const form = new FormData();
        form.append("image", look.file);
        form.append("params", JSON.stringify(params));
        const compared = await LookSync.api("/v1/judge/compare", { method: "POST", body: form });
        current = { sides: compared.sides, lookId: look.lookId, sha256 };
      } else {
        current = { response: await LookSync.searchLook(look.file, params), lookId: look.lookId, sha256 };
      }
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
