// The WAF's fast paths against what they stand for (issue 16, speed): the prefilter derived
// from the rules (src/filters/waf/prefilter.ts) never hides a match; a value the raw scan
// takes as verbatim is what the normaliser makes of it; the JSON byte scanner inspects what
// parsing and walking the body did. The oracle below is the inspection written plainly:
// every value split out, normalised and run through every rule. And the multipart field
// names, decoded as UTF-8.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { waf } from '../../src/filters/waf/index.js';
import { WAF_RULES } from '../../src/filters/waf/rules.js';
import { normalizeValue } from '../../src/filters/waf/normalize.js';
import { rulesFor, WafScan } from '../../src/filters/waf/engine.js';
import { scanJson, JSON_SCAN } from '../../src/filters/waf/json-scan.js';
import { NEXT, REPLY } from '../../src/data/chain.js';
import { clausesFor, atomText, PLAIN_CHARS, SCAN } from '../../src/filters/waf/prefilter.js';
import { readCorpus, asInspectable } from '../../src/filters/waf/score.js';
import type { InspectableRequest } from '../../src/filters/waf/request-scan.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { compiledFilterConfig, fakeContext } from './fake-exchange.js';

const services = { s: { targets: ['http://127.0.0.1:9'] } };
const filterAt = (settings: Record<string, unknown>) => waf.build(compiledFilterConfig(waf, {
  services, routes: [{ name: 'r', match: { prefix: '/' }, service: 's', waf: { mode: 'report', ...settings } }],
} as RawConfigInput, 'r'));

/** The fired rule ids (sorted, joined) of the filter on a request. */
function filterFired(filter: ReturnType<typeof filterAt>, req: InspectableRequest): string {
  const { ctx } = fakeContext({ headers: [...req.headers], query: req.query });
  ctx.path = req.path;
  ctx.body = req.body;
  filter.onRequest(ctx);
  return ctx.wafRules;
}

// ---- the oracle ------------------------------------------------------------------------------

function pairs(text: string, out: string[]): void {
  for (const part of text.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    out.push(normalizeValue(eq < 0 ? part : part.slice(0, eq), true));
    if (eq >= 0) out.push(normalizeValue(part.slice(eq + 1), true));
  }
}

function jsonStrings(v: unknown, out: string[]): void {
  if (typeof v === 'string') out.push(normalizeValue(v, false));
  else if (Array.isArray(v)) for (const x of v) jsonStrings(x, out);
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) { out.push(normalizeValue(k, false)); jsonStrings(x, out); }
}

/** Every normalised value of a request, as issue 16 lists them (default headers). */
function oracleValues(req: InspectableRequest): string[] {
  const out = [normalizeValue(req.path, false)];
  pairs(req.query, out);
  let contentType = '';
  for (let i = 0; i < req.headers.length; i += 2) {
    const name = req.headers[i].toLowerCase();
    const value = req.headers[i + 1];
    if (name === 'content-type') contentType = value;
    if (name === 'cookie') {
      for (const c of value.split(';')) {
        const eq = c.indexOf('=');
        out.push(normalizeValue((eq < 0 ? c : c.slice(0, eq)).trim(), false), normalizeValue(eq < 0 ? '' : c.slice(eq + 1).trim(), false));
      }
    } else if (name === 'referer' || name === 'user-agent') out.push(normalizeValue(value, false));
  }
  const body = req.body;
  if (body === null || body.length === 0) return out;
  const type = contentType.split(';')[0].trim().toLowerCase();
  if (type === 'application/json' || type.endsWith('+json')) {
    let parsed: unknown;
    try { parsed = JSON.parse(body.toString('utf8')); } catch { out.push(normalizeValue(body.toString('utf8'), false)); return out; }
    jsonStrings(parsed, out);
  } else if (type === 'application/x-www-form-urlencoded') pairs(body.toString('utf8'), out);
  else if (type === 'multipart/form-data') {
    const boundary = /boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType)!;
    const parts = body.toString('latin1').split('--' + (boundary[1] ?? boundary[2]));
    for (const part of parts.slice(1)) {
      if (part.startsWith('--')) break;
      const headEnd = part.indexOf('\r\n\r\n');
      if (headEnd < 0 || /filename\s*=/i.test(part.slice(0, headEnd))) continue;
      const name = /name="([^"]{0,200})"/i.exec(part.slice(0, headEnd))?.[1] ?? '';
      const content = part.slice(headEnd + 4).replace(/\r\n$/, '');
      out.push(normalizeValue(Buffer.from(name, 'latin1').toString('utf8'), false), normalizeValue(Buffer.from(content, 'latin1').toString('utf8'), false));
    }
  }
  return out;
}

function oracleFired(req: InspectableRequest, paranoia: number): string {
  const values = oracleValues(req);
  return WAF_RULES.filter((r) => r.paranoia <= paranoia && values.some((v) => new RegExp(r.pattern).test(v))).map((r) => r.id).sort((a, b) => a - b).join(',');
}

// ---- the tests --------------------------------------------------------------------------------

test('the corpora: at every paranoia level the filter fires exactly the rules the oracle finds, on every request', () => {
  const entries = [...readCorpus('attacks'), ...readCorpus('benign')];
  for (let paranoia = 1; paranoia <= 4; paranoia++) {
    const filter = filterAt({ paranoia });
    for (const e of entries) {
      const req = asInspectable(e);
      assert.equal(filterFired(filter, req), oracleFired(req, paranoia), `paranoia ${paranoia}, ${e.id}`);
    }
  }
});

// Text made of the pieces the rules are made of: every atom the prefilter knows, the corpora's
// attack values cut into pieces, and single characters around them.
const atoms = [...new Set(WAF_RULES.flatMap((r) => [...(clausesFor(r.pattern, null) ?? []), ...(clausesFor(r.pattern, PLAIN_CHARS) ?? [])].flat()))].map((a) => atomText(a).replace(/\\b|\\B|\^|\$/g, ''));
const attackPieces = readCorpus('attacks').flatMap((e) => oracleValues(asInspectable(e)).slice(1)).flatMap((v) => v.split(/(?<=[\s'"(<>=;])/));
const piece = fc.oneof(
  fc.constantFrom(...atoms),
  fc.constantFrom(...attackPieces),
  fc.constantFrom(...[...' abcdefgijlmnorstuxyz019_.,/-\'"<>=();:&%+#*@{}[]$`!?\\\t|^~A-ZÉé\u00a0']),
  fc.constantFrom('%27', '%3C', '%2527', '&lt;', '&#x3c;', '\\u003c', '/**/', '<!--x-->', '  ', 'SeLeCt', 'UNION', 'Or', '\0'),
);
const text = fc.array(piece, { maxLength: 24 }).map((a) => a.join(''));

test('property: the prefilter never hides a match (any rule that matches a normalised value is a candidate of its scan, and has its confirm clause)', () => {
  const set = rulesFor(4);
  const automaton = set.prefilter.automaton;
  const check = (t: string) => {
    automaton.scan(t);
    automaton.resolvePlain();
    const always = automaton.plain ? set.prefilter.plainAlways : set.prefilter.anyAlways;
    const confirm = automaton.plain ? set.prefilter.plainConfirm : set.prefilter.anyConfirm;
    set.rules.forEach((r, i) => {
      if (!r.re.test(t)) return;
      assert.ok(automaton.isCandidate(i) || always[i] === 1, `rule ${r.id} matches ${JSON.stringify(t)} but the prefilter skips it`);
      assert.ok(confirm[i] === null || confirm[i]!.some((l) => t.includes(l)), `rule ${r.id} matches ${JSON.stringify(t)} but its confirm clause is not there`);
    });
  };
  for (const v of attackPieces) check(v);
  fc.assert(fc.property(text, (raw) => check(normalizeValue(raw, false))), { numRuns: 3000 });
  // Also text the normaliser would not make, but of the characters the rules ever see (below).
  fc.assert(fc.property(text, (t) => check(t.replace(/\s/g, ' '))), { numRuns: 3000 });
});

test('property: the rules see no whitespace but the space (the prefilter reads \\s as a space): the normaliser makes it so, and the raw scan takes no value with other whitespace as it is', () => {
  const automaton = rulesFor(1).prefilter.automaton;
  const whitespace = fc.constantFrom('\t', '\n', '\r', '\v', '\f', '\u00a0', '\u2028', '\u3000', '\ufeff', '%09', '%0a', '&#9;', '\\u000b', '%C2%A0');
  fc.assert(fc.property(fc.array(fc.oneof(piece, whitespace), { maxLength: 24 }).map((a) => a.join('')), fc.boolean(), (raw, plus) => {
    assert.doesNotMatch(normalizeValue(raw, plus), /[^\S ]/, JSON.stringify(raw));
    if (/[^\S ]/.test(raw)) assert.equal(automaton.scanRaw(raw, 0, raw.length, plus), SCAN.notVerbatim, JSON.stringify(raw));
  }), { numRuns: 3000 });
});

test('property: a value the raw scan calls verbatim is what the normaliser makes of it, and its scan finds the same candidates', () => {
  const set = rulesFor(4);
  const automaton = set.prefilter.automaton;
  const candidates = () => { automaton.resolvePlain(); return set.rules.map((_, i) => automaton.isCandidate(i)); };
  let verbatim = 0;
  fc.assert(fc.property(text, fc.boolean(), (raw, plus) => {
    if (automaton.scanRaw(raw, 0, raw.length, plus) === SCAN.notVerbatim) return;
    verbatim++;
    const fromRaw = candidates();
    const normalized = normalizeValue(raw, plus);
    assert.equal(normalized, plus ? raw.toLowerCase().replace(/\+/g, ' ') : raw.toLowerCase(), JSON.stringify(raw));
    automaton.scan(normalized);
    assert.deepEqual(fromRaw, candidates(), JSON.stringify(raw));
    // The same value as a JSON string's bytes (no + as a space there; a quote would end the string).
    if (!plus && !raw.includes('"')) {
      const quoted = Buffer.from(`${raw}"`, 'latin1');
      assert.equal(automaton.scanJsonString(quoted, 0), raw.length);
      assert.deepEqual(candidates(), fromRaw, JSON.stringify(raw));
    }
  }), { numRuns: 3000 });
  assert.ok(verbatim > 300, `only ${verbatim} verbatim values generated`);
});

test('property: generated requests (query, cookie, JSON, form bodies) fire what the oracle fires', () => {
  const filter = filterAt({ paranoia: 4 });
  const jsonText = fc.oneof(text, fc.constantFrom('', 'plain', 'Mary O\'Brien', 'a"b', 'x\\y', 'é'));
  const json = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small' }, jsonText, fc.integer(), fc.boolean(), fc.constant(null), tie('array'), tie('object')),
    array: fc.array(tie('value'), { maxLength: 4 }),
    object: fc.dictionary(jsonText, tie('value'), { maxKeys: 4 }),
  })).value;
  const enc = (s: string) => encodeURIComponent(s);
  const request = fc.record({
    query: fc.array(fc.tuple(text, text, fc.boolean()), { maxLength: 3 }).map((ps) => ps.map(([k, v, raw]) => (raw ? `${k.replace(/[&=]/g, '')}=${v.replace(/[&=]/g, '')}` : `${enc(k)}=${enc(v)}`)).join('&')),
    cookie: fc.array(fc.tuple(text, text), { maxLength: 3 }).map((cs) => cs.map(([k, v]) => `${k.replace(/[;=]/g, '')}=${v.replace(/;/g, '')}`).join('; ')),
    body: fc.oneof(
      json.map((v) => ({ type: 'application/json', text: JSON.stringify(v) })),
      json.map((v) => ({ type: 'application/json', text: JSON.stringify(v, null, 1) })),
      fc.array(fc.tuple(text, text), { maxLength: 3 }).map((ps) => ({ type: 'application/x-www-form-urlencoded', text: ps.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&') })),
      text.map((t) => ({ type: 'application/json', text: `{"a": "${t}` })), // not JSON: one text
    ),
  });
  fc.assert(fc.property(request, ({ query, cookie, body }) => {
    const req: InspectableRequest = { path: '/api', query, headers: ['cookie', cookie, 'content-type', body.type], body: Buffer.from(body.text) };
    assert.equal(filterFired(filter, req), oracleFired(req, 4), JSON.stringify({ query, cookie, body }));
  }), { numRuns: 400 });
});

test('every rule has a trigger the prefilter can find (no rule runs on every value), and the plain ones are cut to plain text', () => {
  const set = rulesFor(4);
  assert.deepEqual([...set.prefilter.anyAlways].filter((x) => x === 1), []);
  assert.deepEqual([...set.prefilter.plainAlways].filter((x) => x === 1), []);
  // What the derivation knows, on patterns of its own.
  assert.deepEqual(clausesFor(String.raw`\bunion\s{1,8}select\b`, null)!.map((c) => c.map(atomText)), [['\\bunion ']], '\\s is a space: one exact set, cut to six characters');
  assert.deepEqual(clausesFor(String.raw`\bunion[^x]{1,8}select\b`, null)!.map((c) => c.map(atomText)).sort(), [['\\bunion'], ['select\\b']]);
  assert.equal(clausesFor(String.raw`['"]\s{0,4}or`, PLAIN_CHARS), null, 'a quote cannot occur in plain text');
  assert.deepEqual(clausesFor(String.raw`(?:^|\s)or\s{1,2}1`, PLAIN_CHARS)!.map((c) => c.map(atomText)).flat().sort(), [' or 1', ' or  1', '^or 1', '^or  1'].sort());
  assert.deepEqual(clausesFor(String.raw`\w{1,8}`, null), [], 'a wildcard: nothing is known');
  // A rule the prefilter cannot read is refused at load, by id.
  assert.throws(() => rulesFor(1, [{ id: 2999, class: 'sqli', paranoia: 1, severity: 5, description: 'x', pattern: String.raw`a\qb` }]), /WAF rule 2999: the prefilter cannot read its pattern: unsupported escape \\q/);
  assert.deepEqual(clausesFor(String.raw`ab[^>]{0,4}x|cd`, null)!.map((c) => c.map(atomText)).sort(), [['ab', 'cd'], ['cd', 'x']], 'an alternation: a best atom of each branch, and the atoms it may end with');
});

// ---- the JSON byte scanner ---------------------------------------------------------------------

test('property: the JSON scanner accepts a body only if JSON.parse does, and every JSON text JSON.stringify writes', () => {
  const scan = new WafScan(rulesFor(1), null);
  const accepts = (t: string) => { scan.reset(); return scanJson(scan, Buffer.from(t), 64, 100_000) === JSON_SCAN.ok; };
  const parses = (t: string) => { try { JSON.parse(t); return true; } catch { return false; } };
  fc.assert(fc.property(fc.json({ depthSize: 'medium' }), (t) => {
    assert.equal(accepts(t), true, t);
    assert.equal(accepts(` \n\t${JSON.stringify(JSON.parse(t), null, 2)}\r\n `), true, t);
  }), { numRuns: 1000 });
  // Valid JSON cut, spliced or with a byte changed: whatever the scanner accepts parses.
  const mutated = fc.tuple(fc.json(), fc.nat(), fc.nat(), fc.constantFrom('', '"', '\\', ',', ':', '}', ']', '{', '[', '-', '0', '01', '1.', '.5', '1e', 'tru', 'nul', '\u0001', '\\u12', '\\x', ' ', '\ufeff'))
    .map(([t, at, cut, insert]) => t.slice(0, at % (t.length + 1)) + insert + t.slice((at % (t.length + 1)) + (cut % 3)));
  fc.assert(fc.property(mutated, (t) => { if (accepts(t)) assert.ok(parses(t), JSON.stringify(t)); }), { numRuns: 3000 });
  for (const t of ['', ' ', '01', '1.', '-', '[1,]', '{"a":1,}', '{"a" 1}', '"\\u00zz"', '"a\nb"', '[1] 2', '\ufeff{}', 'NaN', "{'a':1}"]) assert.equal(accepts(t), false, JSON.stringify(t));
  for (const t of ['0', '-0.5e+3', '"é\\ud800"', '{"a":[{},[],"x",null,true,false]}', '  {"__proto__": "x"}  ']) assert.equal(accepts(t), true, JSON.stringify(t));
});

test('JSON bodies: fields named as before for exclusions (escaped keys decoded, arrays left out), a key given twice inspected twice, bounds and malformed bodies as before', () => {
  const json = (body: string, settings: Record<string, unknown> = {}) => {
    const { ctx } = fakeContext({ headers: ['content-type', 'application/json'] });
    ctx.path = '/';
    ctx.body = Buffer.from(body);
    const verdict = filterAt({ mode: 'block', ...settings }).onRequest(ctx);
    return { verdict, rules: ctx.wafRules };
  };
  const attack = '<script>alert(1)</script>';
  const attackRules = WAF_RULES.filter((r) => r.paranoia === 1 && new RegExp(r.pattern).test(attack)).map((r) => r.id).join(',');
  const excluded = { exclude: [{ field: 'body.page.items.html' }] };
  for (const body of [
    JSON.stringify({ page: { items: [{ html: attack }] } }), // the bytes are the value: the fast path
    JSON.stringify({ page: { items: [{ html: attack + ' é' }] } }), // non-ASCII: decoded
    '{"page":{"items":[{"h\\u0074ml":"\\u003cscript>alert(1)</script>"}]}}', // escapes in the key and the value
  ]) {
    assert.equal(json(body).verdict, REPLY, body);
    assert.equal(json(body, excluded).verdict, NEXT, body);
    assert.equal(json(body, { exclude: [{ field: 'body.page.items' }] }).verdict, REPLY, `${body}: another field`);
  }
  // A key fires on its own field name too.
  assert.equal(json(JSON.stringify({ page: { [attack]: 1 } }), { exclude: [{ field: `body.page.${attack}` }] }).verdict, NEXT);
  // JSON.parse keeps the last of two equal keys; an upstream's parser may keep the first: both are inspected.
  assert.equal(json('{"q":"1 union select password from users--","q":"x"}').verdict, REPLY);
  // Past the bounds: refused, as before; report mode still reports what the walk found.
  let deep = `"${attack}"`;
  for (let i = 0; i < 40; i++) deep = `[${deep}]`;
  assert.equal(json(deep).verdict, REPLY);
  assert.equal(json(deep, { json_max_depth: 64 }).rules, attackRules);
  const many = `{${Array.from({ length: 30 }, (_, i) => `"k${i}":1`).join(',')},"x":"${attack}"}`;
  assert.equal(json(many, { json_max_keys: 20 }).verdict, REPLY);
  assert.equal(json(many, { json_max_keys: 20, mode: 'report' }).verdict, NEXT);
  assert.equal(json(many, { json_max_keys: 40 }).rules, attackRules);
  // Not JSON: inspected as one text, its rules only (a string cut short fires nothing of its own).
  assert.equal(json(`{"a": "${attack}", `).rules, attackRules);
  assert.ok(attackRules.split(',').length >= 3, attackRules);
  assert.equal(json('{"a": "x\' --", ').rules, '', "2106 (a quote then -- at the end) fires on the string alone, not on the whole text");
});
// ---- multipart field names ---------------------------------------------------------------------

test('multipart: field names are UTF-8 (exclusions name them as written); a name that is not UTF-8 makes the body one text', () => {
  const multipart = (name: Buffer, content: string, settings: Record<string, unknown> = {}) => {
    const { ctx } = fakeContext({ headers: ['content-type', 'multipart/form-data; boundary=XyZ'] });
    ctx.path = '/';
    ctx.body = Buffer.concat([Buffer.from('--XyZ\r\nContent-Disposition: form-data; name="'), name, Buffer.from(`"\r\n\r\n${content}\r\n--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nhello\r\n--XyZ--\r\n`)]);
    const verdict = filterAt({ mode: 'block', ...settings }).onRequest(ctx);
    return { verdict, rules: ctx.wafRules };
  };
  const attack = '<svg onload=alert(1)>';
  const name = Buffer.from('描述-é', 'utf8');
  assert.equal(multipart(name, attack).verdict, REPLY);
  assert.equal(multipart(name, attack, { exclude: [{ field: 'body.描述-é' }] }).verdict, NEXT, 'the exclusion names the field as its UTF-8 text');
  assert.equal(multipart(name, attack, { exclude: [{ field: 'body.' + name.toString('latin1') }] }).verdict, REPLY, 'not as Latin-1 text');
  // Not UTF-8 (a lone 0xff): the whole body is one text; field exclusions do not apply, rule exclusions do.
  const bad = Buffer.from([0x61, 0xff, 0x62]);
  assert.equal(multipart(bad, attack).verdict, REPLY);
  assert.equal(multipart(bad, attack, { exclude: [{ field: 'body.' + bad.toString('latin1') }, { field: 'body.a\ufffdb' }] }).verdict, REPLY);
  assert.equal(multipart(bad, attack, { exclude: [{ field: 'body' }] }).verdict, NEXT);
  assert.equal(multipart(bad, 'plain words').verdict, NEXT);
});
