// prefix-rl/report: one self-contained HTML page of charts and tables from run folders (`prefix-rl report`).
export {
  readRuns,
  readRmEval,
  planCharts,
  renderReport,
  escapeHtml,
  flatten,
  formatNumber,
  distinctNames,
  RUN_COLORS,
  type ReportRun,
  type ReportRunInfo,
  type RmEvalResult,
  type RmEvalSource,
  type ChartData,
  type ReportOptions,
} from './report.js';
export { parseMetrics } from '../run/folder.js';
