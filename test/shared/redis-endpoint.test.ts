// The redis section → endpoint, and the key names of each topology: unchanged with one server
// or Sentinel (so an upgrade finds its keys), hash-tagged in a Cluster so that every script and
// multi-key command keeps its keys in one slot. (The real servers prove it too: Redis Cluster
// answers CROSSSLOT otherwise, test/integration/redis-cluster.test.ts.)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { endpointStatus, parseHostPort, redisEndpointOf, redisKeys, RL_CLUSTER_SHARDS } from '../../src/shared/redis-endpoint.js';

/** What Redis Cluster hashes of a key: the part in the first {…} when not empty, else the key. */
function hashedPart(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  return close === -1 || close === open + 1 ? key : key.slice(open + 1, close);
}

describe('redis endpoint', () => {
  it('parses host:port, [v6]:port; refuses the rest', () => {
    assert.deepEqual(parseHostPort('10.0.0.7:26379'), { host: '10.0.0.7', port: 26379 });
    assert.deepEqual(parseHostPort('redis-a.internal:7000'), { host: 'redis-a.internal', port: 7000 });
    assert.deepEqual(parseHostPort('[fd00::7]:26379'), { host: 'fd00::7', port: 26379 });
    for (const bad of ['10.0.0.7', 'fd00::7:26379', 'host:0', 'host:65536', ':6379', 'a b:1', 'redis://h:1']) assert.equal(parseHostPort(bad), null, bad);
  });

  it('one topology per section; status never shows a password', () => {
    assert.deepEqual(redisEndpointOf({ url: 'redis://:pw@h:1/2' }), { topology: 'single', url: 'redis://:pw@h:1/2' });
    assert.deepEqual(endpointStatus(redisEndpointOf({ url: 'redis://:pw@h:1/2' })), { topology: 'single', url: 'redis://:***@h:1/2' });
    const sentinel = redisEndpointOf({ sentinels: ['a:1', '[::1]:2'], name: 'm', password: 'pw', sentinel_password: 'spw' });
    assert.deepEqual(sentinel, { topology: 'sentinel', sentinels: [{ host: 'a', port: 1 }, { host: '::1', port: 2 }], name: 'm', password: 'pw', sentinelPassword: 'spw' });
    assert.deepEqual(endpointStatus(sentinel), { topology: 'sentinel', sentinels: ['a:1', '[::1]:2'], name: 'm' });
    const cluster = redisEndpointOf({ cluster: ['a:1'], username: 'u', password: 'pw' });
    assert.deepEqual(endpointStatus(cluster), { topology: 'cluster', cluster: ['a:1'] });
  });

  it('one server and Sentinel keep the key names of before', () => {
    for (const topology of ['single', 'sentinel'] as const) {
      const k = redisKeys('lobby:', topology);
      assert.deepEqual([k.counter, k.latest, k.channel, k.instances, k.instance('gw-1'), k.rlInstances],
        ['lobby:config:counter', 'lobby:config:latest', 'lobby:config:changed', 'lobby:instances', 'lobby:instance:gw-1', 'lobby:rl:instances']);
      assert.equal(k.rlBucket(k.rlGroup(0x12345), 'per-ip', '00000000000abcde'), 'lobby:rl:per-ip:00000000000abcde');
      assert.equal(k.rlGroup(1), k.rlGroup(2), 'one group: one script takes any keys');
    }
  });

  it('in a Cluster the config keys share one slot and the buckets spread over 16', () => {
    const k = redisKeys('lobby:', 'cluster');
    const configKeys = [k.counter, k.latest, k.instances, k.instance('gw-1'), k.instance('gw-2')];
    assert.deepEqual(new Set(configKeys.map(hashedPart)), new Set(['lobby:']));
    assert.equal(k.channel, 'lobby:config:changed', 'a channel is no key');
    const groups = new Set<string>();
    for (let lo = -64; lo < 64; lo++) {
      const group = k.rlGroup(lo);
      groups.add(group);
      const a = k.rlBucket(group, 'per-ip', 'aaaaaaaaaaaaaaaa');
      const b = k.rlBucket(group, 'per-user', 'bbbbbbbbbbbbbbbb');
      assert.equal(hashedPart(a), hashedPart(b), 'the keys of one group share a slot');
      assert.notEqual(hashedPart(a), a);
    }
    assert.equal(groups.size, RL_CLUSTER_SHARDS);
    assert.equal(k.rlBucket(k.rlGroup(-1), 'per-ip', 'ffffffffffffffff'), '{lobby:rl:15}:per-ip:ffffffffffffffff');
  });
});
