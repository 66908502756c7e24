// The metrics the functions would send to CloudWatch, locally: each line a function writes is
// looked at as CloudWatch Logs looks at a Lambda log line, and an Embedded Metric Format (EMF)
// line (a JSON object whose `_aws.CloudWatchMetrics` holds metric directives) adds its values to
// running totals, one per namespace, metric name and dimension set with its values. GET
// /dev/metrics shows them. A line that is not valid EMF counts for nothing, as CloudWatch
// extracts no metric from it; it is never an error here.
//
// The rules checked are the specification's
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
// `_aws.Timestamp` a number of milliseconds; each directive a Namespace (1-1,024 characters),
// Dimensions (an array of dimension sets, each an array of at most 30 names of root members
// holding strings) and Metrics (at most 100, each a Name and an optional Unit from the list
// below); each metric's root member a number or an array of at most 100 numbers.

export const UNITS = new Set([
  'Seconds', 'Microseconds', 'Milliseconds', 'Bytes', 'Kilobytes', 'Megabytes', 'Gigabytes', 'Terabytes',
  'Bits', 'Kilobits', 'Megabits', 'Gigabits', 'Terabits', 'Percent', 'Count', 'Bytes/Second',
  'Kilobytes/Second', 'Megabytes/Second', 'Gigabytes/Second', 'Terabytes/Second', 'Bits/Second',
  'Kilobits/Second', 'Megabits/Second', 'Gigabits/Second', 'Terabits/Second', 'Count/Second', 'None',
]);

const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const isName = (value) => typeof value === 'string' && value.length >= 1 && value.length <= 1024;
const isNumber = (value) => typeof value === 'number' && Number.isFinite(value);

/** The samples a line carries, as CloudWatch would extract them: [{ namespace, metric, unit,
 * dimensions: { name: value }, values: [numbers] }], one per directive, dimension set and metric;
 * or null when the line is not EMF or not valid EMF (then nothing of it counts). */
export function parseEmf(line) {
  const text = line.trim();
  if (!text.startsWith('{')) return null;
  let root;
  try {
    root = JSON.parse(text);
  } catch {
    return null;
  }
  const aws = root?._aws;
  if (!aws || typeof aws !== 'object' || !Array.isArray(aws.CloudWatchMetrics)) return null;
  if (!isNumber(aws.Timestamp) || aws.Timestamp < 0) return null;
  const samples = [];
  for (const directive of aws.CloudWatchMetrics) {
    if (!directive || typeof directive !== 'object' || !isName(directive.Namespace)) return null;
    const { Dimensions: sets, Metrics: metrics } = directive;
    if (!Array.isArray(sets) || !Array.isArray(metrics) || metrics.length > 100) return null;
    for (const set of sets) {
      if (!Array.isArray(set) || set.length > 30) return null;
      for (const name of set) if (!isName(name) || !isName(root[name])) return null;
    }
    for (const metric of metrics) {
      if (!metric || typeof metric !== 'object' || !isName(metric.Name)) return null;
      const unit = metric.Unit ?? 'None';
      if (!UNITS.has(unit)) return null;
      const value = root[metric.Name];
      const values = Array.isArray(value) ? value : [value];
      if (values.length === 0 || values.length > 100 || !values.every(isNumber)) return null;
      // A directive with no dimension set still gives the metric, with no dimensions.
      for (const set of sets.length ? sets : [[]]) {
        const dimensions = Object.fromEntries([...set].sort().map((name) => [name, root[name]]));
        samples.push({ namespace: directive.Namespace, metric: metric.Name, unit, dimensions, values });
      }
    }
  }
  return samples.length ? samples : null;
}

/** Running totals per namespace, metric and dimension set: samples (how many values), sum, min
 * and max. For a Count metric the sum is the count. */
export class MetricsCollector {
  constructor() {
    this.reset();
  }

  reset() {
    this.totals = new Map();
    this.lines = 0;
    this.startedAt = new Date().toISOString();
  }

  /** Adds what an EMF line carries; true if it was one (and counted), false otherwise. */
  record(line) {
    const samples = parseEmf(line);
    if (!samples) return false;
    this.lines += 1;
    for (const { namespace, metric, unit, dimensions, values } of samples) {
      const key = JSON.stringify([namespace, metric, dimensions]);
      let total = this.totals.get(key);
      if (!total) {
        total = { namespace, metric, unit, dimensions, samples: 0, sum: 0, min: Infinity, max: -Infinity };
        this.totals.set(key, total);
      }
      for (const value of values) {
        total.samples += 1;
        total.sum += value;
        total.min = Math.min(total.min, value);
        total.max = Math.max(total.max, value);
      }
    }
    return true;
  }

  /** What GET /dev/metrics answers: the totals in a stable order. */
  snapshot() {
    const metrics = [...this.totals.values()]
      .map((total) => ({ ...total }))
      .sort((a, b) => compare(a.namespace, b.namespace) || compare(a.metric, b.metric)
        || Object.keys(a.dimensions).length - Object.keys(b.dimensions).length
        || compare(JSON.stringify(a.dimensions), JSON.stringify(b.dimensions)));
    return { since: this.startedAt, lines: this.lines, metrics };
  }
}
