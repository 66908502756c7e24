// The stack's DynamoDB Local, read directly (it checks no request signature): what the hostile and
// trust tests compare before and after, since an API answer cannot show a row nobody may list.
//
//   DYNAMODB_URL       the stack's DynamoDB Local (http://127.0.0.1:8000)
//   CONNECTIONS_TABLE  nango-connections
import assert from 'node:assert/strict';

const dynamodb = process.env.DYNAMODB_URL ?? 'http://127.0.0.1:8000';
const table = process.env.CONNECTIONS_TABLE ?? 'nango-connections';

async function dynamodbCall(target, body) {
  const response = await fetch(dynamodb, {
    method: 'POST',
    headers: {
      'x-amz-target': `DynamoDB_20120810.${target}`,
      'content-type': 'application/x-amz-json-1.0',
      authorization: 'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: JSON.stringify({ TableName: table, ...body }),
  });
  const answer = await response.json();
  assert.equal(response.status, 200, JSON.stringify(answer));
  return answer;
}

/** JSON with object keys sorted at every depth (a replacer array would drop the nested keys). */
export function canonical(value) {
  const sorted = (v) =>
    Array.isArray(v) ? v.map(sorted) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v;
  return JSON.stringify(sorted(value));
}

/** The whole table, each item as canonical JSON, in a stable order. */
export async function scanTable() {
  const items = [];
  let start;
  do {
    const page = await dynamodbCall('Scan', { ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) });
    items.push(...page.Items);
    start = page.LastEvaluatedKey;
  } while (start);
  return items.map(canonical).sort();
}

/** The stored item of a connection (DynamoDB's JSON: `{"status":{"S":"active"},…}`), or null. */
export async function storedItem(connectionId) {
  const answer = await dynamodbCall('GetItem', { Key: { connectionId: { S: connectionId } }, ConsistentRead: true });
  return answer.Item ?? null;
}

/** An item stored without an owner: nobody's index lists it, and it carries no tags. */
export function isOrphan(item) {
  const tags = item.tags?.M;
  return !item.endUserId && !item.organizationId && (tags === undefined || Object.keys(tags).length === 0);
}
