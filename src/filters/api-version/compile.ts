// The `api-version` filter's compile: the `versioning` section (CompiledConfig.versioning,
// which the workers' version resolver reads: src/data/api-version.ts), each route's version
// mask for the route table (routeVersionMasks, called by src/control/compile.ts) and the
// per-route filter config (Vary and the deprecation headers, sent by filter.ts).
// The schema (schema.ts) checked each value alone; here the rules between values.
import type { FilterCompilation, FilterCompileContext, FilterConfigPath as KeyPath } from '../../data/chain.js';
import { unknownNameMessage } from '../../control/config-error.js';
import { GATEWAY_OWNED_REQUEST_HEADERS } from '../../shared/http-syntax.js';
import {
  deprecationValue, successorLinkValue, sunsetValue, versionBit, versionVary, type CompiledVersioning, type RequestSource,
} from '../../shared/api-version.js';
import { parseVersionDate, type RawVersioning } from './schema.js';

declare module '../../shared/compiled-config.js' {
  interface CompiledFilterRuntimes {
    /** The `versioning` section (absent without one, and in configs built by hand). */
    versioning?: CompiledVersioning;
  }
}

/** A route's filter config: what onRequest/onResponse need, by version index. */
export interface ApiVersionFilterConfig {
  /** Index of the route's own `version` (a path-versioned route), or -1. */
  label: number;
  labelName: string;
  /** Vary value by VERSION_SOURCE code ('' = none); all '' on a path-versioned route. */
  vary: string[];
  /** Header values by version index ('' = not sent). */
  deprecation: string[];
  sunset: string[];
  link: string[];
}

export interface VersionedRouteIn {
  name: string;
  version?: string;
  match: { version?: string | string[] };
}

/** What compile reads of the config. */
export interface ApiVersionInput {
  versioning?: RawVersioning;
  routes: readonly VersionedRouteIn[];
}

const asList = (v: string | string[]): string[] => (typeof v === 'string' ? [v] : v);

/**
 * Each route's version mask for the route table (-1: no match.version, every version), and
 * the issues of `match.version`: a version the `versioning` section does not declare.
 */
export function routeVersionMasks(config: ApiVersionInput, report: (path: KeyPath, message: string) => void): number[] {
  const versions = config.versioning ? Object.keys(config.versioning.versions) : [];
  return config.routes.map((route, index) => {
    const wanted = route.match.version;
    if (wanted === undefined) return -1;
    if (!config.versioning) {
      report(['routes', index, 'match', 'version'], 'needs a top-level versioning section that declares its versions (versioning.versions)');
      return -1;
    }
    let mask = 0;
    asList(wanted).forEach((name, i) => {
      const bit = versions.indexOf(name);
      const at: KeyPath = typeof wanted === 'string' ? ['routes', index, 'match', 'version'] : ['routes', index, 'match', 'version', i];
      if (bit < 0) report(at, unknownNameMessage('version', name, versions, 'no versions are declared'));
      else mask |= versionBit(bit);
    });
    return mask === 0 ? -1 : mask;
  });
}

/**
 * The version indexes each route is served as (`versioning.versions` order), or null for a
 * route without versioning: its match.version versions, or its own `version` (a
 * path-versioned route). What the metrics filter counts by version (src/filters/metrics/);
 * the issues of both keys are reported by compileConfig and compileApiVersion.
 */
export function routeVersionSets(config: ApiVersionInput): (number[] | null)[] {
  const names = config.versioning ? Object.keys(config.versioning.versions) : [];
  const masks = routeVersionMasks(config, () => undefined);
  return config.routes.map((route, index) => {
    if (masks[index] !== -1) return names.flatMap((_name, i) => ((masks[index] & versionBit(i)) !== 0 ? [i] : []));
    const own = route.version === undefined ? -1 : names.indexOf(route.version);
    return own >= 0 ? [own] : null;
  });
}

/** Names of the versions in a mask (for messages). */
export function versionNames(config: ApiVersionInput, mask: number): string[] {
  const versions = config.versioning ? Object.keys(config.versioning.versions) : [];
  return versions.filter((_name, i) => (mask & versionBit(i)) !== 0);
}

export function compileApiVersion(config: ApiVersionInput, ctx: FilterCompileContext): FilterCompilation<ApiVersionFilterConfig> {
  const raw = config.versioning;
  const report = ctx.report;
  config.routes.forEach((route, index) => {
    if (route.version === undefined) return;
    if (route.match.version !== undefined) {
      report(['routes', index, 'version'], 'cannot be combined with match.version: version names the version of a path-versioned route, match.version chooses a route by the version the request names');
    } else if (!raw) {
      report(['routes', index, 'version'], 'needs a top-level versioning section that declares its versions (versioning.versions)');
    } else if (!(route.version in raw.versions)) {
      report(['routes', index, 'version'], unknownNameMessage('version', route.version, Object.keys(raw.versions), 'no versions are declared'));
    }
  });
  if (!raw) return { route: () => null };

  const names = Object.keys(raw.versions);
  const sources = raw.sources as RequestSource[];
  sources.forEach((source, i) => {
    const first = sources.indexOf(source);
    if (first !== i) report(['versioning', 'sources', i], `lists ${JSON.stringify(source)} twice (also sources[${first}])`);
  });
  const headerLower = raw.header.toLowerCase();
  if (headerLower === 'accept' || GATEWAY_OWNED_REQUEST_HEADERS.has(headerLower)) {
    report(['versioning', 'header'], `cannot be ${raw.header}: ${headerLower === 'accept' ? 'Accept is the "accept" source' : 'the gateway handles that header itself'}`);
  }
  let defaultIndex = -1;
  if (raw.default !== undefined) {
    defaultIndex = names.indexOf(raw.default);
    if (defaultIndex < 0) report(['versioning', 'default'], unknownNameMessage('version', raw.default, names, 'no versions are declared'));
  }
  const deprecation: string[] = [];
  const sunset: string[] = [];
  const link: string[] = [];
  for (const name of names) {
    const spec = raw.versions[name];
    const deprecated = spec.deprecated === undefined ? NaN : parseVersionDate(spec.deprecated);
    const sunsetAt = spec.sunset === undefined ? NaN : parseVersionDate(spec.sunset);
    if (Number.isFinite(deprecated) && Number.isFinite(sunsetAt) && sunsetAt < deprecated) {
      report(['versioning', 'versions', name, 'sunset'], `${spec.sunset} is before deprecated (${spec.deprecated}); a version is deprecated before it is retired`);
    }
    if (spec.successor_link !== undefined && spec.deprecated === undefined && spec.sunset === undefined) {
      report(['versioning', 'versions', name, 'successor_link'], 'is sent with a deprecated version only: set deprecated (or sunset) too');
    }
    deprecation.push(Number.isFinite(deprecated) ? deprecationValue(deprecated) : '');
    sunset.push(Number.isFinite(sunsetAt) ? sunsetValue(sunsetAt) : '');
    link.push(spec.successor_link !== undefined ? successorLinkValue(spec.successor_link) : '');
  }

  const vary = versionVary(sources, raw.header);
  const noVary = vary.map(() => '');
  const constrained = config.routes.some((route) => route.match.version !== undefined);
  const runtime: CompiledVersioning = {
    sources, header: raw.header, headerLower, query: raw.query, vendor: raw.vendor ?? '',
    versions: names, defaultIndex, constrained, vary,
  };
  return {
    runtime: { versioning: runtime },
    route(index) {
      const route = config.routes[index];
      if (route.match.version === undefined && route.version === undefined) return null;
      const label = route.version === undefined ? -1 : names.indexOf(route.version);
      return { label, labelName: label >= 0 ? names[label] : '', vary: label >= 0 ? noVary : vary, deprecation, sunset, link };
    },
  };
}
