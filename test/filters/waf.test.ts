// The waf filter on its own: compiled by the real compiler, run against fake contexts carrying
// attacks in each part of a request, under each evasion the normaliser undoes; exclusions,
// report mode, paranoia, thresholds; the regex-safety rule; the corpora's rates (issue 16).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NEXT, REPLY } from '../../src/data/chain.js';
import { waf } from '../../src/filters/waf/index.js';
import { WAF_RULES } from '../../src/filters/waf/rules.js';
import { checkRegexSafety } from '../../src/filters/waf/regex-safety.js';
import { normalizeValue } from '../../src/filters/waf/normalize.js';
import { score } from '../../src/filters/waf/score.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { compileError, compiledFilterConfig, fakeContext, type FakeRequest } from './fake-exchange.js';

const services = { s: { targets: ['http://127.0.0.1:9'] } };
const config = (wafKey: unknown, top?: unknown): RawConfigInput => ({
  services, ...(top === undefined ? {} : { waf: top }),
  routes: [{ name: 'r', match: { prefix: '/' }, service: 's', ...(wafKey === undefined ? {} : { waf: wafKey }) }],
} as RawConfigInput);

function run(raw: RawConfigInput, req: FakeRequest & { path?: string; body?: string; contentType?: string }) {
  const filter = waf.build(compiledFilterConfig(waf, raw, 'r'));
  const headers = [...(req.headers ?? [])];
  if (req.contentType) headers.push('content-type', req.contentType);
  const { ctx, replies } = fakeContext({ ...req, headers });
  ctx.path = req.path ?? '/api/items';
  if (req.body !== undefined) ctx.body = Buffer.from(req.body);
  const verdict = filter.onRequest(ctx);
  return { verdict, replies, ctx };
}

const blocked = (raw: RawConfigInput, req: Parameters<typeof run>[1]) => run(raw, req).verdict === REPLY;

test('attacks in every inspected part are refused 403 waf_blocked naming the rules, never the value', () => {
  const on = config({});
  const cases: Parameters<typeof run>[1][] = [
    { query: "id=1'+OR+'1'%3D'1" },
    { query: 'q=x&%3Cscript%3E=1' }, // a parameter name
    { path: "/api/items/1%27%20UNION%20SELECT%20password%20FROM%20users--" },
    { headers: ['user-agent', '<script>alert(1)</script>'] },
    { headers: ['referer', 'javascript:alert(1)'] },
    { headers: ['cookie', 'theme=dark; session=1%27%20or%201%3D1--'] },
    { body: JSON.stringify({ a: { b: [{ note: '<img src=x onerror=alert(1)>' }] } }), contentType: 'application/json' },
    { body: JSON.stringify({ "' or 1=1--": 1 }), contentType: 'application/json; charset=utf-8' }, // a key
    { body: 'name=x&comment=%3Csvg%2Fonload%3Dalert(1)%3E', contentType: 'application/x-www-form-urlencoded' },
    { body: '--b\r\nContent-Disposition: form-data; name="bio"\r\n\r\n1; DROP TABLE users--\r\n--b--\r\n', contentType: 'multipart/form-data; boundary=b' },
  ];
  for (const req of cases) {
    const { verdict, replies } = run(on, req);
    assert.equal(verdict, REPLY, JSON.stringify(req));
    assert.equal(replies[0].spec.status, 403);
    assert.equal(replies[0].spec.code, 'waf_blocked');
    assert.match(replies[0].spec.message, /Rules: \d{4}(,\d{4})*\.$/);
    assert.doesNotMatch(replies[0].spec.message, /script|union|drop|onerror|alert|or 1/i);
  }
});

test('each evasion is undone: percent, double percent, +, entities, \\uXXXX, SQL and HTML comments, case, whitespace runs, null bytes', () => {
  const on = config({});
  const evasions: [string, FakeRequest & { body?: string; contentType?: string }][] = [
    ['percent', { query: 'q=%3Cscript%3Ealert(1)%3C/script%3E' }],
    ['double percent', { query: 'q=%253Cscript%253Ealert(1)' }],
    ['plus', { query: 'q=1+union+select+1,2' }],
    ['entities', { body: JSON.stringify({ c: '&lt;svg onload&#61;alert(1)&gt;' }), contentType: 'application/json' }],
    ['hex entities', { body: JSON.stringify({ c: '<a href="&#x6a;avascript:alert(1)">' }), contentType: 'application/json' }],
    ['\\uXXXX', { body: '{"c":"\\\\u003cscript\\\\u003ealert(1)"}', contentType: 'application/json' }],
    ['sql comments', { query: 'q=1/**/UNION/**/SELECT/**/1,2' }],
    ['mysql versioned comment', { query: 'q=1 /*!50000UNION*/ /*!50000SELECT*/ 1' }],
    ['html comments', { query: 'q=%3Cscript%3C!--x--%3E%3E' }],
    ['case', { query: 'q=1%20UnIoN%20SeLeCt%201' }],
    ['whitespace runs', { query: 'q=1%09%0A%20union%0D%0A%0Bselect%201' }],
    ['null bytes', { query: 'q=%3Cscr%00ipt%3Ealert(1)' }],
  ];
  for (const [name, req] of evasions) assert.equal(blocked(on, req), true, name);
  // Each of these is the evasion alone on benign text: nothing fires.
  assert.equal(normalizeValue('%2527', false), "'");
  assert.equal(normalizeValue('%u003Cscript%u003e', false), '<script>', '%uXXXX (IIS style)');
  assert.equal(normalizeValue('%u00zz', false), '%u00zz', 'not four hex digits: left as it is');
  assert.equal(normalizeValue('a+b', true), 'a b');
  assert.equal(normalizeValue('a+b', false), 'a+b');
  assert.equal(normalizeValue('Hello\t\t  World', false), 'hello world');
  assert.equal(normalizeValue('plain', false), 'plain');
});

test('benign requests pass: names with apostrophes, prose with select ... from, markdown, code in a comment field', () => {
  const on = config({});
  const cases: Parameters<typeof run>[1][] = [
    { query: "name=Mary+O'Brien&city=D%27Angelo+Street" },
    { query: 'q=select+comfort+mattress&sort=price_asc' },
    { body: JSON.stringify({ comment: 'Please select the items from the list and ship them by Friday.', author: "Seán O'Neil" }), contentType: 'application/json' },
    { body: JSON.stringify({ body: 'This is **bold** and <b>also bold</b>; <i>italics</i>.' }), contentType: 'application/json' },
    { body: JSON.stringify({ comment: 'for (let i = 0; i < n; i++) { sum += a[i]; }' }), contentType: 'application/json' },
    { headers: ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36', 'cookie', 'session=abc123; prefs=%7B%22theme%22%3A%22dark%22%7D'] },
  ];
  for (const req of cases) assert.equal(run(on, req).verdict, NEXT, JSON.stringify(req));
});

test('exclusions by rule and field; report mode admits and records; paranoia and threshold; waf: false', () => {
  const markup = { body: JSON.stringify({ description: '<svg><script>alert(1)</script></svg>', title: 'x' }), contentType: 'application/json' };
  assert.equal(blocked(config({}), markup), true);
  assert.equal(blocked(config({ exclude: [{ field: 'body.description' }] }), markup), false);
  assert.equal(blocked(config({ exclude: [{ rule: 2201, field: 'body.description' }] }), markup), true, 'other rules still fire');
  assert.equal(blocked(config({ exclude: [{ rule: 2201 }, { rule: 2204 }, { rule: 2207 }, { rule: 2209 }] }), markup), false, 'every rule that fired, excluded everywhere');
  const moved = { body: JSON.stringify({ title: '<svg><script>alert(1)</script></svg>' }), contentType: 'application/json' };
  assert.equal(blocked(config({ exclude: [{ field: 'body.description' }] }), moved), true, 'an exclusion is for its field only');

  const report = run(config({ mode: 'report' }), { query: "id=1'+or+'1'%3D'1" });
  assert.equal(report.verdict, NEXT);
  assert.equal(report.ctx.wafBlocked, true);
  assert.match(report.ctx.wafRules, /^2101/);

  // A lone warning (an <img> tag, severity 3) is under the default threshold of 5, over a threshold of 3.
  const img = { body: JSON.stringify({ c: 'see <img src="/a.png">' }), contentType: 'application/json' };
  assert.equal(blocked(config({}), img), false);
  assert.equal(run(config({}), img).ctx.wafRules, '2205');
  assert.equal(blocked(config({ threshold: 3 }), img), true);
  // SELECT ... FROM in prose is a paranoia-2 rule.
  const prose = { body: JSON.stringify({ c: 'select the red one from the shelf' }), contentType: 'application/json' };
  assert.equal(blocked(config({}), prose), false);
  assert.equal(blocked(config({ paranoia: 2 }), prose), true);
  // The top-level default applies to every route; a route may turn it off or override a key.
  assert.equal(blocked(config(undefined, { paranoia: 2 }), prose), true);
  assert.throws(() => compiledFilterConfig(waf, config(false, {}), 'r'), /has no waf filter/);
  assert.equal(blocked(config({ paranoia: 1 }, { paranoia: 2 }), prose), false);
});

test('bodies: a streamed JSON body is refused (unbuffered_body: refuse) or admitted (allow); JSON past its bounds is refused', () => {
  const raw = config({});
  const filter = waf.build(compiledFilterConfig(waf, raw, 'r'));
  const { ctx, replies } = fakeContext({ headers: ['content-type', 'application/json'] });
  ctx.body = new (require_Readable())();
  assert.equal(filter.onRequest(ctx), REPLY);
  assert.equal(replies[0].spec.code, 'waf_uninspectable');
  const allow = waf.build(compiledFilterConfig(waf, config({ unbuffered_body: 'allow' }), 'r'));
  const other = fakeContext({ headers: ['content-type', 'application/json'] });
  other.ctx.body = new (require_Readable())();
  assert.equal(allow.onRequest(other.ctx), NEXT);
  let deep = '"x"';
  for (let i = 0; i < 40; i++) deep = `[${deep}]`;
  const r = run(raw, { body: deep, contentType: 'application/json' });
  assert.equal(r.replies[0]?.spec.code, 'waf_uninspectable');
  assert.equal(run(config({ json_max_depth: 64 }), { body: deep, contentType: 'application/json' }).verdict, NEXT);
  // Report mode refuses nothing: neither a streamed body nor one past its bounds.
  const report = waf.build(compiledFilterConfig(waf, config({ mode: 'report' }), 'r'));
  const streamed = fakeContext({ headers: ['content-type', 'application/json'] });
  streamed.ctx.body = new (require_Readable())();
  assert.equal(report.onRequest(streamed.ctx), NEXT);
  assert.equal(run(config({ mode: 'report' }), { body: deep, contentType: 'application/json' }).verdict, NEXT);
  // Bodies of other types are not parsed.
  assert.equal(run(raw, { body: '<script>alert(1)</script>', contentType: 'text/plain' }).verdict, NEXT);
});

import { Readable } from 'node:stream';
function require_Readable() { return class extends Readable { override _read() {} }; }

test('the regex-safety rule: every rule is proven safe; unbounded, nested and backreference patterns are refused', () => {
  for (const r of WAF_RULES) assert.equal(checkRegexSafety(r.pattern).ok, true, String(r.id));
  assert.match(checkRegexSafety('(a+)+$').reason, /unbounded/);
  assert.match(checkRegexSafety('(?:ab{1,4}){1,9}').reason, /group is repeated/);
  assert.match(checkRegexSafety('(a)\\1').reason, /backreference/);
  assert.match(checkRegexSafety('a(?=b)').reason, /lookaround/);
  assert.match(checkRegexSafety('.*x').reason, /unbounded/);
  assert.match(checkRegexSafety('a{0,5000}').reason, /over 1024/);
  assert.equal(checkRegexSafety('\\bunion\\s{1,8}select\\b').ok, true);
  // Rule ids are unique, and every id an exclusion names must exist.
  assert.equal(new Set(WAF_RULES.map((r) => r.id)).size, WAF_RULES.length);
  assert.match(compileError(config({ exclude: [{ rule: 9999 }] })), /no WAF rule 9999/);
});

test('property: the prefilter never hides a match (a query value some rule matches fires it), and long adversarial values stay bounded', () => {
  const alphabet = fc.constantFrom(...[..."abcdeflnorstuwxy0123456789 '\"<>=()/*-#;:&%+.,{}$\\"]);
  const on = waf.build(compiledFilterConfig(waf, config({ paranoia: 4 }), 'r'));
  const words = fc.constantFrom('or', 'and ', 'select ', ' from ', 'union', 'delete from', 'insert into', '0x1234abcd', 'script', 'onload', '{{', '${', 'sleep(', 'information_schema', '--', 'order by 1');
  fc.assert(fc.property(fc.array(fc.oneof(alphabet, words), { maxLength: 40 }).map((a) => a.join('')), (s) => {
    const text = normalizeValue(encodeURIComponent(s), true);
    const direct = WAF_RULES.filter((r) => new RegExp(r.pattern).test(text)).length > 0;
    const { ctx } = fakeContext({ query: 'q=' + encodeURIComponent(s) });
    ctx.path = '/';
    on.onRequest(ctx);
    assert.equal(ctx.wafRules !== '', direct, JSON.stringify(s));
  }), { numRuns: 500 });
  // Pumped inputs of the rules' own characters complete (no catastrophic backtracking).
  for (const pump of [' ', "'", 'a', '(', '<', '{{', 'or ', 'select ', "' or ", '&#', '%']) {
    const { ctx } = fakeContext({ query: 'q=' + encodeURIComponent(pump.repeat(4000 / pump.length)) + 'x' });
    ctx.path = '/';
    on.onRequest(ctx);
  }
});

test('the corpora: at paranoia 1, at least 95 % of attacks per class detected and at most 1 % of benign requests flagged', () => {
  const rows = score(5).filter((r) => r.paranoia === 1);
  const rate = (cls: string) => rows.find((r) => r.class === cls)!;
  assert.ok(rate('sqli').total >= 250 && rate('xss').total >= 250 && rate('benign').total >= 500);
  assert.ok(rate('sqli').rate >= 0.95, `sqli ${rate('sqli').rate}`);
  assert.ok(rate('xss').rate >= 0.95, `xss ${rate('xss').rate}`);
  assert.ok(rate('benign').rate <= 0.01, `benign ${rate('benign').rate}`);
});

test('config/examples/waf.yaml loads: every route but the health check gets the waf filter, with its settings', async () => {
  const { loadConfigFile } = await import('../../src/control/config-load.js');
  const { fileURLToPath } = await import('node:url');
  const config = await loadConfigFile(fileURLToPath(new URL('../../../config/examples/waf.yaml', import.meta.url)));
  const wafOf = (name: string) => config.routes.find((r) => r.name === name)!.filters.find((f) => f.name === 'waf')?.config as { mode: string; paranoia: number; exclude: unknown[] } | undefined;
  assert.equal(wafOf('health'), undefined);
  assert.equal(wafOf('search')!.mode, 'report');
  assert.equal(wafOf('search')!.paranoia, 2);
  assert.equal(wafOf('pages')!.exclude.length, 3);
  assert.equal(wafOf('api')!.mode, 'block');
});
