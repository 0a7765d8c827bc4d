// pkg-template/engine.js's packVectors (node --test): the number arrays of a request body cross
// into wasm as Float64Arrays. The answers through it are checked end to end by the other npm
// tests (every query and upsert there goes through it); this checks the body it hands over.
// Run: node --test tests/npm/engine.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packVectors } from '../../pkg-template/engine.js';

const vector = (n, f = (i) => i * 0.25 - 1) => Array.from({ length: n }, (_, i) => f(i));

test('number arrays of 8 or more become Float64Arrays of the same numbers, wherever they sit', () => {
  const body = {
    query: vector(384),
    prefetch: [{ query: vector(16), limit: 5 }, { query: { nearest: vector(8) } }],
    filter: { must: [{ key: 'id', match: { any: [1, 2, 3, 4, 5, 6, 7, 8, 9] } }] },
    limit: 10,
  };
  const packed = packVectors(body);
  assert.ok(packed.query instanceof Float64Array);
  assert.deepEqual(Array.from(packed.query), body.query);
  assert.ok(packed.prefetch[0].query instanceof Float64Array);
  assert.ok(packed.prefetch[1].query.nearest instanceof Float64Array);
  assert.ok(packed.filter.must[0].match.any instanceof Float64Array);
  assert.deepEqual(Array.from(packed.filter.must[0].match.any), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(packed.limit, 10);
});

test("the caller's body is never changed, and a body without vectors comes back as itself", () => {
  const body = { points: [{ id: 1, vector: vector(8), payload: { tags: ['a', 'b'] } }] };
  const before = JSON.stringify(body);
  const packed = packVectors(body);
  assert.equal(JSON.stringify(body), before);
  assert.ok(Array.isArray(body.points[0].vector));
  assert.notEqual(packed, body);
  assert.notEqual(packed.points, body.points);
  assert.equal(packed.points[0].payload, body.points[0].payload); // untouched branches are shared
  const plain = { limit: 3, filter: { must: [{ key: 'k', match: { value: 'x' } }] }, short: [1, 2, 3] };
  assert.equal(packVectors(plain), plain);
});

test('short, mixed or holey arrays, class instances and exotic keys are left as they are', () => {
  const mixed = [1, 2, 3, 4, 5, 6, 7, '8'];
  assert.equal(packVectors(mixed), mixed);
  const short = vector(7);
  assert.equal(packVectors(short), short);
  const holey = vector(9);
  delete holey[4]; // a hole is undefined (null in JSON), not a number
  assert.equal(packVectors(holey), holey);
  const date = new Date(0);
  const map = new Map([['v', vector(8)]]);
  assert.equal(packVectors(date), date);
  assert.equal(packVectors(map), map);
  // an own "__proto__" key stays an own key of the copy, not its prototype
  const odd = JSON.parse(`{"__proto__": ${JSON.stringify(vector(8))}, "x": 1}`);
  const packed = packVectors(odd);
  assert.equal(Object.getPrototypeOf(packed), Object.prototype);
  assert.ok(Object.hasOwn(packed, '__proto__'));
  assert.ok(packed.__proto__ instanceof Float64Array);
  assert.deepEqual(Object.keys(packed), ['__proto__', 'x']);
  // NaN is a number: it stays NaN (the engine reads it as null, as it did before)
  const nan = vector(8);
  nan[3] = NaN;
  assert.ok(Number.isNaN(packVectors(nan)[3]));
  assert.equal(packVectors(null), null);
  const nullProto = Object.assign(Object.create(null), { v: vector(8) });
  assert.ok(packVectors(nullProto).v instanceof Float64Array);
});
