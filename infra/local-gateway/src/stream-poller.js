// Lambda's DynamoDB event source mapping, locally: reads the table's stream from DynamoDB Local
// (DescribeTable → DescribeStream → GetShardIterator → GetRecords) and invokes a function with the
// records in Lambda's event shape ({"Records": [...]}, each with its eventSourceARN), one batch at a
// time per shard, in order. A partial batch response (batchItemFailures) resumes at the failed
// record, as Lambda does; after `maxRetries` retries the rest of the batch is given up with a log
// line (deployed, its description goes to the dead-letter queue). No bisecting: locally a poison
// record is simply given up after the retries.
const STREAMS = 'DynamoDBStreams_20120810';

export class StreamPoller {
  constructor({ endpoint, table, fn, log = console.log, intervalMs = 250, batchSize = 100, maxRetries = 3, retryDelayMs = 500 }) {
    Object.assign(this, { endpoint, table, fn, log, intervalMs, batchSize, maxRetries, retryDelayMs });
    this.shards = new Map(); // shardId → iterator (null once closed)
    this.stopped = false;
  }

  async call(target, body) {
    const res = await fetch(this.endpoint, {
      method: 'POST',
      headers: {
        'x-amz-target': target,
        'content-type': 'application/x-amz-json-1.0',
        // DynamoDB Local checks only that a credential is named.
        authorization: 'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      },
      body: JSON.stringify(body),
    });
    const answer = await res.json();
    if (!res.ok) throw new Error(`${target}: ${answer.__type ?? res.status} ${answer.message ?? answer.Message ?? ''}`);
    return answer;
  }

  async start() {
    const { Table } = await this.call('DynamoDB_20120810.DescribeTable', { TableName: this.table });
    this.streamArn = Table.LatestStreamArn;
    if (!this.streamArn || !Table.StreamSpecification?.StreamEnabled) {
      throw new Error(`table ${this.table} has no stream (see infra/dynamodb/connections-table.json)`);
    }
    // What is in the stream already happened before this process: start at its end.
    await this.discover('LATEST');
    this.log(`[stream] polling ${this.streamArn}`);
    this.loop = this.run();
  }

  stop() {
    this.stopped = true;
  }

  async discover(position) {
    const { StreamDescription } = await this.call(`${STREAMS}.DescribeStream`, { StreamArn: this.streamArn });
    for (const shard of StreamDescription.Shards ?? []) {
      if (this.shards.has(shard.ShardId)) continue;
      // At start only open shards matter: a closed one is marked read, so that a later discovery
      // (which reads new shards from their beginning) does not publish its old records again.
      if (position === 'LATEST' && shard.SequenceNumberRange?.EndingSequenceNumber) {
        this.shards.set(shard.ShardId, null);
        continue;
      }
      const { ShardIterator } = await this.call(`${STREAMS}.GetShardIterator`, {
        StreamArn: this.streamArn,
        ShardId: shard.ShardId,
        ShardIteratorType: position,
      });
      this.shards.set(shard.ShardId, ShardIterator);
    }
  }

  async run() {
    let rounds = 0;
    while (!this.stopped) {
      try {
        if (rounds++ % 20 === 0) await this.discover('TRIM_HORIZON');
        for (const [shardId, iterator] of this.shards) {
          if (!iterator) continue;
          const read = await this.records(shardId, iterator);
          if (!read) continue;
          const { Records = [], NextShardIterator } = read;
          this.shards.set(shardId, NextShardIterator ?? null);
          if (Records.length) await this.deliver(Records);
        }
      } catch (error) {
        this.log(`[stream] ${error.message}`);
      }
      await sleep(this.intervalMs);
    }
  }

  // One GetRecords. DynamoDB Local (not DynamoDB) refuses an iterator taken at LATEST while its
  // shard was empty once a write to another table has moved the shared sequence numbers on
  // (TrimmedDataAccessException): every record in such a shard is new, so it is read again from its
  // beginning. Undefined when the iterator was replaced.
  async records(shardId, iterator) {
    try {
      return await this.call(`${STREAMS}.GetRecords`, { ShardIterator: iterator, Limit: this.batchSize });
    } catch (error) {
      if (!String(error.message).includes('TrimmedDataAccessException')) throw error;
      const { ShardIterator } = await this.call(`${STREAMS}.GetShardIterator`, {
        StreamArn: this.streamArn,
        ShardId: shardId,
        ShardIteratorType: 'TRIM_HORIZON',
      });
      this.shards.set(shardId, ShardIterator);
      return undefined;
    }
  }

  async deliver(records) {
    let batch = records.map((record) => ({ ...record, eventSourceARN: this.streamArn }));
    for (let attempt = 0; batch.length; attempt++) {
      let failed;
      try {
        // A throttle is not a failed attempt: the event source mapping waits for a sandbox.
        const answer = await this.fn.invokeWhenFree({ Records: batch });
        const ids = (answer?.batchItemFailures ?? []).map((f) => f.itemIdentifier);
        if (!ids.length) return;
        // Lambda resumes at the lowest failed sequence number; an empty one fails the whole batch.
        const index = ids.includes('') || ids.includes(null) ? 0 : Math.min(...ids.map((id) => {
          const i = batch.findIndex((r) => r.dynamodb.SequenceNumber === id);
          return i < 0 ? 0 : i;
        }));
        failed = `batchItemFailures from ${batch[index].dynamodb.SequenceNumber}`;
        batch = batch.slice(index);
      } catch (error) {
        failed = error.message;
      }
      if (attempt >= this.maxRetries) {
        this.log(`[stream] gave up on ${batch.length} record(s) after ${attempt} retries (${failed}); deployed, this batch would go to the dead-letter queue`);
        return;
      }
      this.log(`[stream] ${this.fn.name}: ${failed}; retrying ${batch.length} record(s)`);
      await sleep(this.retryDelayMs * (attempt + 1));
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
