// Followthrough web UI: htmx wiring and the dashboard's charts. No inline script anywhere, so the
// Content-Security-Policy can forbid it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (window.htmx) {
    // A rejected action answers 409/422/403 with the form and its reason: swap it in like a 200.
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "40[13]", swap: true, error: false },
      { code: "4..", swap: true, error: false },
      { code: "...", swap: false, error: true },
    ];
    document.body.addEventListener("htmx:configRequest", (event) => {
      event.detail.headers["X-CSRF-Token"] = document.body.dataset.csrf;
    });
    // The queue refreshes itself, but not under someone's keyboard focus or pointer: replacing
    // the table then would throw them out of the row they are on.
    document.body.addEventListener("htmx:beforeRequest", (event) => {
      const elt = event.detail.elt;
      if (elt.id === "queue-results" && (elt.contains(document.activeElement) || elt.matches(":hover"))) {
        event.preventDefault();
      }
    });
    // After an action, keep keyboard focus where the person was reading: the updated case.
    document.body.addEventListener("htmx:afterSwap", (event) => {
      const target = event.detail.target;
      if (target && (target.id === "case-body" || target.classList.contains("action"))) {
        const alert = document.querySelector("#case-body [role=alert]");
        const heading = document.querySelector("#case-body h1");
        const focus = alert || heading;
        if (focus) {
          focus.setAttribute("tabindex", "-1");
          focus.focus();
        }
      }
    });
  }
  drawCharts();
});

function drawCharts() {
  const source = document.getElementById("chart-data");
  if (!source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  // A palette with enough contrast against white, in a fixed order so colours keep their meaning.
  const colours = ["#1f6f50", "#6b7280", "#b45309", "#b91c1c", "#1d4ed8", "#7c3aed"];
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#374151";
  document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    const series = data[canvas.dataset.chart];
    const labels = series.map((pair) => pair[0]);
    const values = series.map((pair) => pair[1]);
    if (values.every((v) => v === 0)) return; // the page says "No cases yet" instead
    const doughnut = canvas.dataset.chart === "outcomes";
    new Chart(canvas, {
      type: doughnut ? "doughnut" : "bar",
      data: {
        labels,
        datasets: [{
          label: "Cases",
          data: values,
          backgroundColor: doughnut ? colours : "#1d5fa8",
          borderRadius: doughnut ? 0 : 4,
        }],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: doughnut, position: "right" } },
        scales: doughnut ? {} : { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  });
}
