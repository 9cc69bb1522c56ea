// Fields bound from the URL path and the query string, set by dotted field path from their string
// form, then merged into the body by encodeMessage (a body value for a bound field is refused).
import type { Type } from 'protobufjs';

import { ProtoJsonError, safeName } from './errors.js';
import { typeInfo, Wkt } from './descriptors.js';
import { BoundLeaf, BoundNode } from './encode.js';

/** Well-known types a path or query string can carry (their JSON form is a string or a scalar). */
const STRING_FORM = new Set<Wkt>([Wkt.Timestamp, Wkt.Duration, Wkt.FieldMask, Wkt.Wrapper]);

/**
 * Fields bound from the path and the query, by dotted field path (each segment a proto name or a
 * JSON name), from their string form. Values are checked when the message is encoded
 * (jsonToProto), where errors name the field path. Repeated fields append; a second value for a
 * singular field, or any query value for a field the path bound, is an error. A map field takes
 * entries one by one, each with its key (`labels[key]=value` in a query, grpc-gateway's form);
 * a key given twice is an error.
 */
export class BoundFields {
  /** @internal the tree encodeMessage merges with the body. */
  readonly root = new BoundNode();

  constructor(readonly type: Type) {}

  /** True when nothing is bound. */
  get empty(): boolean {
    return this.root.children.size === 0;
  }

  set(fieldPath: string, value: string, origin: 'path' | 'query', mapKey?: string): void {
    const segments = fieldPath.split('.');
    let node = this.root;
    let info = typeInfo(this.type);
    let shown = '';
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i]!;
      const fi = info.byKey.get(seg);
      shown = shown === '' ? (fi?.jsonName ?? safeName(seg)) : `${shown}.${fi?.jsonName ?? safeName(seg)}`;
      if (fi === undefined) throw new ProtoJsonError(shown, 'unknown field', 'unknown_field');
      const last = i === segments.length - 1;
      const mt = fi.messageType;
      const wkt = mt === null ? Wkt.None : typeInfo(mt).wkt;
      if (!last) {
        if (mt === null || fi.repeated || fi.map || wkt !== Wkt.None) {
          throw new ProtoJsonError(shown, 'is not a singular message field, so it has no sub-fields to bind');
        }
        const child = node.children.get(fi);
        if (child instanceof BoundLeaf) throw new ProtoJsonError(shown, 'is already bound');
        let next = child;
        if (next === undefined) { next = new BoundNode(); node.children.set(fi, next); }
        node = next;
        info = typeInfo(mt);
        continue;
      }
      if (mapKey !== undefined && !fi.map) throw new ProtoJsonError(shown, 'is not a map field, so it takes no [key]');
      if (fi.map && mapKey === undefined) {
        throw new ProtoJsonError(shown, origin === 'query'
          ? `is a map field: set its entries as ${shown}[key]=value`
          : 'is a map field and cannot be set from the path');
      }
      if (mt !== null && !STRING_FORM.has(wkt)) {
        throw new ProtoJsonError(fi.map ? `${shown}[]` : shown, fi.map
          ? `map values of type ${mt.name} cannot be set from a query string`
          : 'cannot be set from a path or query string (bind one of its scalar sub-fields)');
      }
      const prev = node.children.get(fi);
      if (prev instanceof BoundNode) throw new ProtoJsonError(shown, 'is already bound');
      if (prev !== undefined) {
        if (prev.origin === 'path') throw new ProtoJsonError(shown, `field is bound from the path and must not also be set in the ${origin}`, 'bound_conflict');
        if (prev.keys !== null) {
          if (prev.keys.includes(mapKey!)) throw new ProtoJsonError(`${shown}[]`, 'map key given more than once');
          prev.keys.push(mapKey!);
        } else if (!fi.repeated) {
          throw new ProtoJsonError(shown, 'a singular field is given more than once');
        }
        prev.values.push(value);
        return;
      }
      if (fi.oneof !== null) {
        for (const other of node.children.keys()) {
          if (other !== fi && other.oneof === fi.oneof) throw new ProtoJsonError(shown, `more than one field of oneof ${fi.oneof} is set`);
        }
      }
      const leaf = new BoundLeaf(origin, fi.map);
      leaf.values.push(value);
      leaf.keys?.push(mapKey!);
      node.children.set(fi, leaf);
    }
  }
}
