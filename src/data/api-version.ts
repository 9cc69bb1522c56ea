// A request's API version, found before routing (the version is a match constraint of the
// route table, src/data/route-match.ts), from the sources `versioning.sources` orders: the
// Accept header's media types, a version header, a query parameter; else the default.
// Built once per generation (generation.ts); only configs with a versioned route pay for it.
import type { RequestContext, VersionRouting } from './request-context.js';
import { VERSION_NOT_SERVED } from './route-match.js';
import { matchEscapedPath } from './escaped-slashes.js';
import { hadEscapedSlash } from '../shared/path-normalize.js';
import { GW_ERR, type GatewayErrorSpec } from '../shared/errors.js';
import {
  acceptedVersions, SOURCE_CODE, UNKNOWN_VERSION, VERSION_SOURCE, versionBit, type CompiledVersioning, type VersionSourceCode,
} from '../shared/api-version.js';

/** How many versions of one Accept header are tried, most preferred first. */
const MAX_CANDIDATES = 8;

export class VersionResolver implements VersionRouting {
  private readonly indexByName: Map<string, number>;
  private readonly sources: VersionSourceCode[];
  /** Candidate version indexes of the current request, most preferred first. */
  private readonly candidates = new Int32Array(MAX_CANDIDATES);
  private candidateCount = 0;
  /** ['vary', value] per source code, for the gateway's own 400/406 replies (null: no Vary). */
  private readonly varyHeaders: (readonly string[] | null)[];

  constructor(readonly config: CompiledVersioning) {
    this.indexByName = new Map(config.versions.map((name, index) => [name, index]));
    this.sources = config.sources.map((s) => SOURCE_CODE[s]);
    this.varyHeaders = config.vary.map((v) => (v === '' ? null : ['vary', v]));
  }

  private indexOf(name: string): number {
    const index = this.indexByName.get(name);
    return index === undefined ? UNKNOWN_VERSION : index;
  }

  /** Sets the request's candidate versions and their source (one per source, first present wins). */
  private derive(ctx: RequestContext): VersionSourceCode {
    this.candidateCount = 0;
    const config = this.config;
    for (let s = 0; s < this.sources.length; s++) {
      const source = this.sources[s];
      if (source === VERSION_SOURCE.ACCEPT) {
        const accept = headerList(ctx.headers, 'accept');
        if (accept === '') continue;
        const versions = acceptedVersions(accept, config.vendor);
        if (versions.length === 0) continue;
        for (let i = 0; i < versions.length && this.candidateCount < MAX_CANDIDATES; i++) {
          this.candidates[this.candidateCount++] = this.indexOf(versions[i]);
        }
        return source;
      }
      const value = source === VERSION_SOURCE.HEADER ? singleHeader(ctx.headers, config.headerLower) : queryParam(ctx.query, config.query);
      if (value === null) continue;
      this.candidates[this.candidateCount++] = value === AMBIGUOUS ? UNKNOWN_VERSION : this.indexOf(value);
      return source;
    }
    this.candidates[this.candidateCount++] = config.defaultIndex >= 0 ? config.defaultIndex : UNKNOWN_VERSION;
    return VERSION_SOURCE.DEFAULT;
  }

  /**
   * Routes the request under its version (server.ts's match, as for an unversioned config):
   * once per candidate version, most preferred first, until one is served. Sets
   * ctx.apiVersion* and returns the route index or a negative code of route-match.ts or
   * escaped-slashes.ts (VERSION_NOT_SERVED: answer versionError()).
   */
  route(ctx: RequestContext, url: string): number {
    const source = this.derive(ctx);
    ctx.apiVersionSource = source;
    const matcher = ctx.gen.matcher;
    const escaped = hadEscapedSlash();
    let result = VERSION_NOT_SERVED;
    for (let i = 0; i < this.candidateCount; i++) {
      const index = this.candidates[i];
      matcher.versionBit = versionBit(index);
      result = escaped ? matchEscapedPath(ctx, url) : matcher.match(ctx.methodBit, ctx.hostName, ctx.path);
      if (result !== VERSION_NOT_SERVED) {
        ctx.apiVersionIndex = index === UNKNOWN_VERSION ? -1 : index;
        ctx.apiVersion = index === UNKNOWN_VERSION ? '' : this.config.versions[index];
        break;
      }
    }
    return result;
  }

  /** The answer when no route serves the request's version: 406 (Accept), 400 (header, query, none). */
  versionError(ctx: RequestContext): GatewayErrorSpec {
    const source = ctx.apiVersionSource;
    if (source === VERSION_SOURCE.ACCEPT) return GW_ERR.version_not_acceptable;
    return source === VERSION_SOURCE.DEFAULT ? GW_ERR.version_required : GW_ERR.unsupported_version;
  }

  /** `Vary` for the gateway's own reply (the version came from these headers), or null. */
  varyFor(ctx: RequestContext): readonly string[] | null {
    return this.varyHeaders[ctx.apiVersionSource] ?? null;
  }
}

/** A header given twice with different values names no one version. */
const AMBIGUOUS = '\u0000ambiguous';

/** Every copy of a list header, joined with ", " ('' when absent). Names in `headers` are lower-case. */
function headerList(headers: readonly string[], name: string): string {
  let out = '';
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === name) out = out === '' ? headers[i + 1] : out + ', ' + headers[i + 1];
  }
  return out;
}

/** The trimmed value of a single-valued header; null when absent or empty; AMBIGUOUS when copies differ. */
function singleHeader(headers: readonly string[], name: string): string | null {
  let found: string | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== name) continue;
    const value = headers[i + 1].trim();
    if (value === '') continue;
    if (found !== null && found !== value) return AMBIGUOUS;
    found = value;
  }
  return found;
}

/** A query parameter's value (percent-decoded); null when absent or empty; AMBIGUOUS when copies differ. */
export function queryParam(query: string, name: string): string | null {
  if (query.length === 0) return null;
  let found: string | null = null;
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    if (end - start > name.length && query.charCodeAt(start + name.length) === 0x3d /* = */ && query.startsWith(name, start)) {
      let value = query.slice(start + name.length + 1, end);
      if (value.indexOf('%') >= 0) {
        try { value = decodeURIComponent(value); } catch { return AMBIGUOUS; }
      }
      if (value !== '') {
        if (found !== null && found !== value) return AMBIGUOUS;
        found = value;
      }
    }
    start = end + 1;
  }
  return found;
}
