// Draws every chart of a page (and of content htmx swaps in) from its JSON spec.
// No inline script: the portal's CSP allows scripts from 'self' only.
"use strict";
(function () {
  var CONFIG = { displaylogo: false, responsive: true,
                 modeBarButtonsToRemove: ["select2d", "lasso2d", "sendDataToCloud"] };

  function draw(root) {
    if (typeof Plotly === "undefined") { return; }
    root.querySelectorAll("div.chart[data-spec]").forEach(function (div) {
      var source = document.getElementById(div.dataset.spec);
      if (!source) { return; }
      var spec = JSON.parse(source.textContent);
      Plotly.react(div, spec.data, spec.layout, CONFIG).then(function () {
        div.dataset.drawn = "1";
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof htmx !== "undefined") {
      htmx.onLoad(draw);  // the first load and every swapped-in part
    } else {
      draw(document);
    }
  });
})();
