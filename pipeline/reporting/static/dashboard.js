// leadflow dashboard: draws every <canvas data-chart="name"> from the JSON in #chart-data.
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  var charts = JSON.parse(source.textContent);
  var palette = ["#2563eb", "#16a34a", "#dc2626", "#f59e0b", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
  Chart.defaults.animation = false;
  Chart.defaults.font.family = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif";
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = charts[canvas.getAttribute("data-chart")];
    if (!spec) {
      return;
    }
    var datasets = spec.datasets.map(function (set, i) {
      var color = set.color || palette[i % palette.length];
      return {
        label: set.label, data: set.data, backgroundColor: color, borderColor: color,
        pointRadius: 0, borderWidth: spec.type === "line" ? 2 : 0
      };
    });
    var value = spec.horizontal ? "x" : "y";
    var scales = {
      x: { stacked: !!spec.stacked, beginAtZero: true },
      y: { stacked: !!spec.stacked, beginAtZero: true }
    };
    if (spec.percent) {
      scales[value].max = 100;
    }
    new Chart(canvas, {
      type: spec.type || "bar",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: spec.horizontal ? "y" : "x",
        plugins: { legend: { display: datasets.length > 1, labels: { boxWidth: 12 } } },
        scales: scales
      }
    });
  });
})();
