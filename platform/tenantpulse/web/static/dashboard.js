// Draws each <canvas data-chart="key"> from the page's JSON (#chart-data) with Chart.js.
// The MRR chart shows MRR as a line and its movements (all positive amounts) as bars.
(function () {
  const charts = JSON.parse(document.getElementById("chart-data").textContent);
  const colours = ["#2680c2", "#3ebd93", "#f0b429", "#d64545", "#9446ed", "#52606d"];
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    const key = canvas.dataset.chart;
    const spec = charts[key];
    const datasets = spec.datasets.map(function (set, i) {
      const movement = key === "mrr" && i > 0;
      return {
        label: set.label,
        data: set.data,
        type: movement ? "bar" : "line",
        borderColor: colours[i % colours.length],
        backgroundColor: colours[i % colours.length],
        pointRadius: 0,
        spanGaps: true,
      };
    });
    new Chart(canvas, {
      type: "line",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        interaction: { mode: "index", intersect: false },
      },
    });
  });
  document.body.dataset.chartsReady = "yes";
})();
