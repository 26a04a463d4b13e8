// What the report page carries besides its data: the stylesheet and the script that draws the charts with uPlot
// (inlined from the uplot package, so the page opens offline). The script reads the charts from the page's
// <script type="application/json" id="report-data">, draws each into its `[data-chart=i] .chart` element, and sets
// window.__REPORT_STATUS__ = { charts, drawn, errors } once every chart has drawn (or failed), for tests to wait on.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** uPlot's script (an IIFE defining the global `uPlot`) and stylesheet, read from the installed package. */
export function uplotAssets(): { script: string; css: string } {
  if (!assets) {
    // uplot has no "exports" map, so its dist files resolve by path.
    const require = createRequire(import.meta.url);
    const script = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
    const css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
    // Inlined as they are: neither may close (or comment out) its element.
    if (/<\/script|<!--/i.test(script) || /<\/style/i.test(css))
      throw new Error('the uplot files cannot be inlined: they hold </script>, <!-- or </style>');
    assets = { script, css };
  }
  return assets;
}
let assets: { script: string; css: string } | undefined;

/** The page's own stylesheet: a light theme in the system font; charts in a grid that fits the window. */
export const PAGE_CSS = `
:root { color-scheme: light; --fg: #1d232b; --muted: #5f6b7a; --line: #dde1e6; --bg: #f5f6f8; --card: #fff; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1500px; margin: 0 auto; padding: 20px 24px 48px; }
header h1 { margin: 0 0 4px; font-size: 22px; overflow-wrap: anywhere; }
header p { margin: 0; color: var(--muted); }
nav { margin: 12px 0 8px; display: flex; flex-wrap: wrap; gap: 6px 16px; }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 8px; color: var(--muted); font-weight: 600; }
p.note { color: var(--muted); margin: 6px 0; }
.table-wrap { display: inline-block; max-width: 100%; vertical-align: top; overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin: 8px 0 12px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
.table-wrap th, .table-wrap td { padding: 5px 10px; text-align: left; border-bottom: 1px solid var(--line); vertical-align: top; }
.table-wrap thead th { background: #eef1f4; font-weight: 600; white-space: nowrap; }
.table-wrap tbody tr:nth-child(even) > * { background: #fafbfc; }
.table-wrap tbody tr:last-child > * { border-bottom: none; }
.table-wrap tbody th { font-weight: 500; }
.table-wrap .num { text-align: right; white-space: nowrap; }
.table-wrap .absent { color: #a0a8b2; }
tr.group-start > * { border-top: 2px solid var(--line); }
.table-wrap .wrap { max-width: 36em; overflow-wrap: anywhere; }
code, .key { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--accent); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 540px), 1fr)); gap: 14px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px 8px; margin: 0; min-width: 0; }
.card figcaption { font-weight: 600; margin-bottom: 4px; overflow-wrap: anywhere; }
.card .chart { width: 100%; min-height: 270px; overflow: hidden; }
.card .desc { margin: 4px 0 0; font-size: 12px; color: var(--muted); }
.card .desc code { font-size: 11.5px; color: var(--fg); }
.uplot { font-family: inherit; width: auto; }
.u-legend { font-size: 12px; line-height: 1.3; text-align: left; margin: 2px 0 0; }
.u-legend .u-series > * { padding: 1px 3px; }
.u-inline tr { margin-right: 10px; }
.u-legend .u-value { font-variant-numeric: tabular-nums; min-width: 4.5em; text-align: left; }
`;

/**
 * The page's script, plain browser JavaScript (no imports; the global `uPlot` comes from the inlined library).
 * Chart data (report.ts, ChartData): { title, kind: 'lines' | 'stacked', yLabel, x, series: [{ label, color, fill?,
 * dash?, points? }], y: one array per series, aligned with x, null where a series has no value }.
 */
export const PAGE_SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var status = { charts: data.charts.length, drawn: 0, errors: [] };
  window.addEventListener('error', function (event) { status.errors.push(String(event.message)); });

  var HEIGHT = 270;
  // Whole steps only on the x axis.
  var STEP_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 2.5e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];

  function fmt(v) {
    if (v == null || !isFinite(v)) return '–';
    if (Number.isInteger(v)) return String(v);
    var a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }
  function tick(v) {
    if (v == null) return '';
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(1);
    return String(Number(v.toPrecision(6)));
  }
  // An axis as wide as its longest tick label (uPlot's auto-size recipe).
  function axisSize(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    var size = axis.ticks.size + axis.gap;
    var longest = (values || []).reduce(function (acc, v) { return v.length > acc.length ? v : acc; }, '');
    if (longest !== '') {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / window.devicePixelRatio;
    }
    return Math.ceil(size) + 6;
  }

  function baseOptions(chart, width) {
    return {
      width: width,
      height: HEIGHT,
      scales: { x: { time: false } },
      cursor: { y: false, sync: { key: 'steps' } },
      legend: { live: true },
      axes: [
        { label: 'step', size: 32, labelSize: 22, incrs: STEP_INCRS, values: function (u, splits) { return splits.map(tick); } },
        { label: chart.yLabel, size: axisSize, values: function (u, splits) { return splits.map(tick); } },
      ],
      series: [{ label: 'step', value: function (u, v) { return v == null ? '–' : String(v); } }],
    };
  }

  // One line per series; a sparse series (e.g. val/accuracy, measured every few steps) shows its points.
  function linesChart(chart, width) {
    var options = baseOptions(chart, width);
    // A flat line sits mid-chart (uPlot's default range for a constant 0 is 0..100).
    options.scales.y = {
      range: function (u, min, max) {
        if (min == null || max == null) return [0, 1];
        if (min === max) return min === 0 ? [-1, 1] : [min - Math.abs(min) / 2, max + Math.abs(max) / 2];
        return uPlot.rangeNum(min, max, 0.1, true);
      },
    };
    chart.series.forEach(function (s) {
      var series = { label: s.label, stroke: s.color, width: 2, spanGaps: true, value: function (u, v) { return fmt(v); } };
      if (s.dash) series.dash = s.dash;
      series.points = s.points ? { show: true, size: 6, fill: s.color } : { show: false };
      options.series.push(series);
    });
    return { options: options, data: [chart.x].concat(chart.y) };
  }

  // Parts stacked bottom-up (missing = 0): series k is drawn at the sum of parts 0..k and filled down to 0,
  // topmost first, so each part's band shows between its line and the one below. The legend shows the part itself.
  function stackedChart(chart, width) {
    var options = baseOptions(chart, width);
    options.scales.y = { range: function (u, min, max) { return [0, max > 0 ? max * 1.05 : 1]; } };
    var sums = [];
    var running = chart.x.map(function () { return 0; });
    chart.y.forEach(function (part) {
      running = running.map(function (total, i) { return total + (part[i] == null ? 0 : part[i]); });
      sums.push(running);
    });
    var data = [chart.x];
    for (var k = chart.series.length - 1; k >= 0; k--) {
      (function (part) {
        var s = chart.series[part];
        options.series.push({
          label: s.label,
          stroke: s.color,
          fill: s.fill,
          width: 1,
          points: { show: false },
          value: function (u, v, si, idx) { return idx == null ? '–' : fmt(chart.y[part][idx]); },
        });
      })(k);
      data.push(sums[k]);
    }
    return { options: options, data: data };
  }

  var plots = [];
  var pending = data.charts.map(function (chart, i) {
    return new Promise(function (resolve) {
      try {
        var target = document.querySelector('[data-chart="' + i + '"] .chart');
        if (!target) throw new Error('no element for the chart');
        var width = Math.max(target.clientWidth, 200);
        var built = chart.kind === 'stacked' ? stackedChart(chart, width) : linesChart(chart, width);
        var first = true;
        built.options.hooks = {
          draw: [function () {
            if (!first) return;
            first = false;
            status.drawn += 1;
            resolve();
          }],
        };
        plots.push({ plot: new uPlot(built.options, built.data, target), target: target, width: width });
      } catch (err) {
        status.errors.push(chart.title + ': ' + (err && err.message ? err.message : String(err)));
        resolve();
      }
    });
  });

  // Charts follow their card's width.
  if (typeof ResizeObserver === 'function') {
    var observer = new ResizeObserver(function () {
      plots.forEach(function (p) {
        var width = Math.max(p.target.clientWidth, 200);
        if (width !== p.width) {
          p.width = width;
          p.plot.setSize({ width: width, height: HEIGHT });
        }
      });
    });
    plots.forEach(function (p) { observer.observe(p.target); });
  }

  var timeout = new Promise(function (resolve) { setTimeout(resolve, 10000); });
  Promise.race([Promise.all(pending), timeout]).then(function () {
    if (status.drawn < status.charts && status.errors.length === 0) status.errors.push('not every chart drew within 10 s');
    window.__REPORT_STATUS__ = status;
  });
})();
`;
