// EMF lines as CloudWatch reads them: what a valid line adds to the totals, and that an invalid
// line (not JSON, no directives, a rule of the specification broken) adds nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsCollector, parseEmf } from '../src/metrics.js';

const NAMESPACE = 'nango-connect';
/** A line as the functions write it: one directive, the Function dimension and the metrics given. */
function emf(values, { dimensions = [['Function'], ['Function', 'Outcome']], units = {}, extra = {} } = {}) {
  return JSON.stringify({
    _aws: {
      Timestamp: 1796630400000,
      CloudWatchMetrics: [{
        Namespace: NAMESPACE,
        Dimensions: dimensions,
        Metrics: Object.keys(values).map((Name) => ({ Name, Unit: units[Name] ?? 'Count' })),
      }],
    },
    Function: 'webhook-receiver',
    Outcome: 'stored',
    RequestId: 'not a dimension',
    ...values,
    ...extra,
  });
}

test('a count is summed per namespace, metric and dimension set with its values', () => {
  const metrics = new MetricsCollector();
  assert.equal(metrics.record(emf({ Webhooks: 1 })), true);
  assert.equal(metrics.record(emf({ Webhooks: 1 })), true);
  assert.equal(metrics.record(emf({ Webhooks: 1 }, { extra: { Outcome: 'ignored' } })), true);
  const totals = metrics.snapshot().metrics.map(({ metric, dimensions, sum, samples }) => ({ metric, dimensions, sum, samples }));
  assert.deepEqual(totals, [
    { metric: 'Webhooks', dimensions: { Function: 'webhook-receiver' }, sum: 3, samples: 3 },
    { metric: 'Webhooks', dimensions: { Function: 'webhook-receiver', Outcome: 'ignored' }, sum: 1, samples: 1 },
    { metric: 'Webhooks', dimensions: { Function: 'webhook-receiver', Outcome: 'stored' }, sum: 2, samples: 2 },
  ]);
  assert.equal(metrics.snapshot().lines, 3);
});

test('a timing keeps samples, sum, min and max, from single values and arrays alike', () => {
  const metrics = new MetricsCollector();
  const latency = (value) => emf({ NangoLatency: value }, { dimensions: [['Function']], units: { NangoLatency: 'Milliseconds' } });
  metrics.record(latency(120));
  metrics.record(latency([30, 45.5, 300]));
  assert.deepEqual(metrics.snapshot().metrics, [{
    namespace: NAMESPACE, metric: 'NangoLatency', unit: 'Milliseconds', dimensions: { Function: 'webhook-receiver' },
    samples: 4, sum: 495.5, min: 30, max: 300,
  }]);
});

test('several metrics and directives in one line, a missing unit is None, an empty dimension set is no dimensions', () => {
  const line = JSON.stringify({
    _aws: {
      Timestamp: 1,
      CloudWatchMetrics: [
        { Namespace: 'a', Dimensions: [[]], Metrics: [{ Name: 'Rows' }, { Name: 'Deleted', Unit: 'Count' }] },
        { Namespace: 'b', Dimensions: [['Function']], Metrics: [{ Name: 'Rows', Unit: 'Count' }] },
      ],
    },
    Function: 'reconcile-connections',
    Rows: 200,
    Deleted: 0,
  });
  assert.deepEqual(parseEmf(line).map(({ namespace, metric, unit, dimensions, values }) => [namespace, metric, unit, dimensions, values]), [
    ['a', 'Rows', 'None', {}, [200]],
    ['a', 'Deleted', 'Count', {}, [0]],
    ['b', 'Rows', 'Count', { Function: 'reconcile-connections' }, [200]],
  ]);
});

test('lines that are not valid EMF are ignored, not counted', () => {
  const valid = JSON.parse(emf({ Webhooks: 1 }));
  const broken = (change) => {
    const copy = structuredClone(valid);
    change(copy);
    return JSON.stringify(copy);
  };
  const invalid = {
    'plain text': 'webhook stored',
    'a JSON log line without _aws': JSON.stringify({ level: 'INFO', message: 'stored', Webhooks: 1 }),
    'not JSON': `${emf({ Webhooks: 1 }).slice(0, -1)}`,
    'extra text after the object': `${emf({ Webhooks: 1 })} trailing`,
    'a JSON array': JSON.stringify([valid]),
    '_aws without CloudWatchMetrics': broken((l) => delete l._aws.CloudWatchMetrics),
    'CloudWatchMetrics not an array': broken((l) => { l._aws.CloudWatchMetrics = l._aws.CloudWatchMetrics[0]; }),
    'no Timestamp': broken((l) => delete l._aws.Timestamp),
    'a Timestamp as a string': broken((l) => { l._aws.Timestamp = '2026-12-07T00:00:00Z'; }),
    'no Namespace': broken((l) => delete l._aws.CloudWatchMetrics[0].Namespace),
    'an empty Namespace': broken((l) => { l._aws.CloudWatchMetrics[0].Namespace = ''; }),
    'no Dimensions': broken((l) => delete l._aws.CloudWatchMetrics[0].Dimensions),
    'a dimension set not an array': broken((l) => { l._aws.CloudWatchMetrics[0].Dimensions = ['Function']; }),
    'a dimension not at the root': broken((l) => delete l.Outcome),
    'a dimension value not a string': broken((l) => { l.Outcome = 3; }),
    'more than 30 dimensions in a set': broken((l) => {
      const names = Array.from({ length: 31 }, (_, i) => `D${i}`);
      for (const name of names) l[name] = 'x';
      l._aws.CloudWatchMetrics[0].Dimensions = [names];
    }),
    'no Metrics': broken((l) => delete l._aws.CloudWatchMetrics[0].Metrics),
    'a metric without a Name': broken((l) => delete l._aws.CloudWatchMetrics[0].Metrics[0].Name),
    'an unknown Unit': broken((l) => { l._aws.CloudWatchMetrics[0].Metrics[0].Unit = 'Requests'; }),
    'a metric value missing': broken((l) => delete l.Webhooks),
    'a metric value as a string': broken((l) => { l.Webhooks = '1'; }),
    'a metric value array holding a string': broken((l) => { l.Webhooks = [1, 'two']; }),
    'an empty value array': broken((l) => { l.Webhooks = []; }),
    'more than 100 values': broken((l) => { l.Webhooks = Array(101).fill(1); }),
    'no directive at all': broken((l) => { l._aws.CloudWatchMetrics = []; }),
  };
  const metrics = new MetricsCollector();
  for (const [what, line] of Object.entries(invalid)) {
    assert.equal(parseEmf(line), null, what);
    assert.equal(metrics.record(line), false, what);
  }
  assert.deepEqual(metrics.snapshot().metrics, []);
  assert.equal(metrics.snapshot().lines, 0);
  // And the valid one it was made from counts.
  assert.equal(metrics.record(JSON.stringify(valid)), true);
});

test('reset empties the totals', () => {
  const metrics = new MetricsCollector();
  metrics.record(emf({ Webhooks: 1 }));
  metrics.reset();
  assert.deepEqual([metrics.snapshot().lines, metrics.snapshot().metrics], [0, []]);
});
