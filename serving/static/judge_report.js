/* /judge/report: the MOS table (rows: models; columns: criteria as "mean ± CI"), per layer, agreement. */
"use strict";

(() => {
  const { el } = LookSync;
  const $ = (id) => document.getElementById(id);
  const out = $("report");

  function cell(stats) {
    if (!stats || stats.mean === null) return "-";
    if (stats.ci95 === null) return stats.mean.toFixed(2);
    return `${stats.mean.toFixed(2)} ± ${stats.ci95.toFixed(2)}`;
  }

  function table(id, first, rows, criteria) {
    return el("table", { id, className: "mos" },
      el("thead", {}, el("tr", {}, [first, "n", ...criteria].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows.map((row) => el("tr", { "data-model": row.model_id },
        el("td", { text: row.layer ? `${row.model_id} / ${row.layer}` : row.model_id }),
        el("td", { className: "n", text: row.n }),
        criteria.map((c) => el("td", { "data-criterion": c, title: `n = ${row.criteria[c].n}`, text: cell(row.criteria[c]) })),
      ))));
  }

  function alpha(v) { return v === null ? "-" : v.toFixed(2); }

  function render(report) {
    const ag = report.agreement;
    const pct = Math.round(report.confidence * 100);
    out.replaceChildren(
      el("p", { id: "summary", text: `${report.n_ratings} rating(s) by ${report.n_judges} judge(s); mean ± ${pct}% `
        + `confidence interval (Student t); a judge's repeated rating of an item counts once (the latest).` }),
      table("mos-models", "model", report.models, report.criteria),
      el("h2", { text: "Per layer" }),
      table("mos-layers", "model / layer", report.layers, report.criteria),
      el("h2", { text: "Agreement" }),
      el("p", { text: `${ag.measure} over ${ag.items} item(s) rated by at least two judges (interval / ordinal metric).` }),
      el("table", { id: "agreement" },
        el("thead", {}, el("tr", {}, ["criterion", "interval", "ordinal", "items"].map((h) => el("th", { text: h })))),
        el("tbody", {}, Object.entries(ag.criteria).map(([c, v]) => el("tr", {},
          el("td", { text: c }), el("td", { text: alpha(v.interval) }), el("td", { text: alpha(v.ordinal) }),
          el("td", { text: v.items })))),
      ),
    );
  }

  async function load() {
    out.replaceChildren(el("p", { className: "busy", text: "loading..." }));
    try {
      render(await LookSync.api("/v1/judgments/report"));
    } catch (err) {
      LookSync.showError(out, err);
    }
  }

  LookSync.keyBox($("api-key"), load);
  load();
})();
