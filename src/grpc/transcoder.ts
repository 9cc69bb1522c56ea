// A route's transcoding table: every HTTP binding of the methods of the route's services
// (google.api.http options, additional_bindings, auto_mapping), checked against the
// descriptors and compiled into a RuleMatcher. Built by the control plane at config load (to
// report every problem with its key path) and again by each worker from the same descriptors.
import type protobuf from 'protobufjs';
import type { CompiledTranscode } from './compiled.js';
import { parseTemplate, RuleMatcher, type CompiledBinding, type PathTemplate } from './http-rule.js';
import { pb } from './descriptors.js';

export interface GrpcMethod {
  /** `/pkg.Service/Method`: the gRPC path. */
  path: string;
  requestType: protobuf.Type;
  responseType: protobuf.Type;
  serverStreaming: boolean;
}

interface HttpRule {
  get?: string; put?: string; post?: string; delete?: string; patch?: string;
  custom?: { kind?: string; path?: string };
  body?: string;
  response_body?: string;
  additional_bindings?: HttpRule[] | HttpRule;
}

const VERBS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** The (google.api.http) option of a method, as protobufjs parsed it. */
function httpRuleOf(method: protobuf.Method): HttpRule | null {
  for (const opt of method.parsedOptions ?? []) {
    const rule = (opt as Record<string, unknown>)['(google.api.http)'];
    if (rule !== undefined) return rule as HttpRule;
  }
  return null;
}

/** The field at a dotted path of `type`, or why there is none. */
export function fieldAt(type: protobuf.Type, path: readonly string[]): protobuf.Field | string {
  let t = type;
  for (let i = 0; i < path.length; i++) {
    const field = t.fields[path[i]];
    if (field === undefined) return `${t.fullName.slice(1)} has no field "${path[i]}"`;
    if (i === path.length - 1) return field;
    field.resolve();
    if (!(field.resolvedType instanceof pb().Type) || field.repeated || field.map) return `"${path.slice(0, i + 1).join('.')}" is not a singular message field`;
    t = field.resolvedType;
  }
  return 'empty field path';
}

export type Report = (message: string) => void;

/**
 * The bindings of a route. `report` gets each problem (unknown service, a template that does
 * not parse, a field a rule names that the message does not have); the rest still compiles.
 */
export function buildBindings(root: protobuf.Root, config: CompiledTranscode, report: Report): RuleMatcher<GrpcMethod> {
  const bindings: CompiledBinding<GrpcMethod>[] = [];
  for (const serviceName of config.services) {
    let service: protobuf.Service;
    try {
      service = root.lookupService(serviceName);
    } catch {
      report(`service ${JSON.stringify(serviceName)} is not in the descriptors`);
      continue;
    }
    for (const method of service.methodsArray) {
      method.resolve();
      const m: GrpcMethod = {
        path: `/${serviceName}/${method.name}`,
        requestType: method.resolvedRequestType!,
        responseType: method.resolvedResponseType!,
        serverStreaming: method.responseStream === true,
      };
      const where = `${serviceName}.${method.name}`;
      // Client-streaming and bidi methods have no REST mapping here: left out, not an error
      // (the rest of the service is served).
      if (method.requestStream) continue;
      const rule = httpRuleOf(method);
      if (rule !== null) {
        // protobufjs gives one additional_bindings as an object, several as an array.
        const extra = rule.additional_bindings;
        for (const r of [rule, ...(extra === undefined ? [] : Array.isArray(extra) ? extra : [extra])]) {
          const b = compileBinding(r, m, `${where}: `, report);
          if (b !== null) bindings.push(b);
        }
      } else if (config.autoMapping) {
        // `/pkg.Service/Method`: two literal segments.
        bindings.push({ method: 'POST', template: parseTemplate(m.path) as PathTemplate, body: '*', responseBody: '', target: m });
      }
    }
  }
  return new RuleMatcher(bindings);
}

function compileBinding(rule: HttpRule, m: GrpcMethod, where: string, report: Report): CompiledBinding<GrpcMethod> | null {
  let method: string | null = null;
  let path: string | null = null;
  for (const verb of VERBS) {
    if (rule[verb] !== undefined) { method = verb.toUpperCase(); path = rule[verb]!; }
  }
  if (rule.custom !== undefined) { method = rule.custom.kind ?? ''; path = rule.custom.path ?? ''; }
  if (method === null || path === null) { report(`${where}an http rule names no method (get, put, post, delete, patch or custom)`); return null; }
  if (!/^[A-Z]+$/.test(method)) { report(`${where}custom kind ${JSON.stringify(method)} must be an upper-case HTTP method`); return null; }
  const template = parseTemplate(path);
  if (typeof template === 'string') { report(`${where}path template ${JSON.stringify(path)} ${template}`); return null; }
  let ok = true;
  for (const v of template.variables) {
    const f = fieldAt(m.requestType, v.fieldPath);
    if (typeof f === 'string') { report(`${where}path template ${JSON.stringify(path)}: ${f}`); ok = false; }
    else if (f.repeated || f.map || (f.resolve().resolvedType instanceof pb().Type)) {
      report(`${where}path template ${JSON.stringify(path)}: "${v.fieldPath.join('.')}" must be a singular scalar field`); ok = false;
    }
  }
  const body = rule.body ?? '';
  if (body !== '' && body !== '*' && m.requestType.fields[body] === undefined) {
    report(`${where}body ${JSON.stringify(body)}: ${m.requestType.fullName.slice(1)} has no such field`); ok = false;
  }
  const responseBody = rule.response_body ?? '';
  if (responseBody !== '' && m.responseType.fields[responseBody] === undefined) {
    report(`${where}response_body ${JSON.stringify(responseBody)}: ${m.responseType.fullName.slice(1)} has no such field`); ok = false;
  }
  return ok ? { method, template, body, responseBody, target: m } : null;
}
