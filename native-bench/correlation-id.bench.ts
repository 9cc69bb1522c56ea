// Correlation ids: minting (Lobby's flat-string v4 UUID vs crypto.randomUUID and randomBytes→hex) and validating a client's id (Lobby's anchored regex vs a char-table scan).
//
//   node dist/native-bench/correlation-id.bench.js
import { randomBytes, randomUUID } from 'node:crypto';
import { Bench } from 'tinybench';
import { correlationIdFor, isValidCorrelationId, newCorrelationId } from '../src/data/correlation-id.js';
import { collectRows, printRows, ratio, runWhenMain, type BenchRow } from './bench-kit.js';

const ALLOWED = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/+=') ALLOWED[ch.charCodeAt(0)] = 1;
function charTable(id: string): boolean {
  if (id.length === 0 || id.length > 128) return false;
  for (let i = 0; i < id.length; i++) { const c = id.charCodeAt(i); if (c >= 128 || ALLOWED[c] === 0) return false; }
  return true;
}
const CLIENT_IDS = ['5b0c9a3e-1f2d-4c1b-9e77-0d7a5f2c9b11', 'req-7f3a.9:x', '01HZX3N4Q6W8E2R5T7Y9U1I3O5', 'has space'];

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const bench = new Bench({ time: options.time ?? 300 });
  let sink = 0;
  bench
    .add('mint: v4 UUID (lobby)', () => { sink += newCorrelationId().length; })
    .add('mint: crypto.randomUUID', () => { sink += randomUUID().length; })
    .add('mint: randomBytes(16).hex', () => { sink += randomBytes(16).toString('hex').length; })
    .add('validate: regex (lobby)', () => { for (const id of CLIENT_IDS) sink += isValidCorrelationId(id) ? 1 : 0; })
    .add('validate: char table', () => { for (const id of CLIENT_IDS) sink += charTable(id) ? 1 : 0; })
    .add('per request: keep client id', () => { sink += correlationIdFor(CLIENT_IDS[0]).length; })
    .add('per request: none sent', () => { sink += correlationIdFor('').length; });
  const rows = await collectRows('correlation-id', bench);
  if (sink === -1) console.log(sink);
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  const rows = await run();
  printRows(rows);
  console.log(`mint lobby / crypto.randomUUID: ${ratio(rows, 'mint: v4 UUID (lobby)', 'mint: crypto.randomUUID')}x; ` +
    `validate regex / char table: ${ratio(rows, 'validate: regex (lobby)', 'validate: char table')}x`);
});
