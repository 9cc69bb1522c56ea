// google.rpc.Status and the standard error details of googleapis google/rpc/error_details.proto
// (same names and field numbers), built in so error bodies print their details whether or not the
// service's own protos import them. protobufjs ships neither file.
import protobuf from 'protobufjs';
import type { Root, Type } from 'protobufjs';

const str = (id: number) => ({ type: 'string', id });
const strs = (id: number) => ({ type: 'string', id, rule: 'repeated' });

const RPC = {
  nested: {
    google: {
      nested: {
        rpc: {
          nested: {
            Status: { fields: { code: { type: 'int32', id: 1 }, message: str(2), details: { type: 'google.protobuf.Any', id: 3, rule: 'repeated' } } },
            ErrorInfo: { fields: { reason: str(1), domain: str(2), metadata: { keyType: 'string', type: 'string', id: 3 } } },
            RetryInfo: { fields: { retry_delay: { type: 'google.protobuf.Duration', id: 1 } } },
            DebugInfo: { fields: { stack_entries: strs(1), detail: str(2) } },
            QuotaFailure: {
              fields: { violations: { type: 'Violation', id: 1, rule: 'repeated' } },
              nested: { Violation: { fields: { subject: str(1), description: str(2) } } },
            },
            PreconditionFailure: {
              fields: { violations: { type: 'Violation', id: 1, rule: 'repeated' } },
              nested: { Violation: { fields: { type: str(1), subject: str(2), description: str(3) } } },
            },
            BadRequest: {
              fields: { field_violations: { type: 'FieldViolation', id: 1, rule: 'repeated' } },
              nested: {
                FieldViolation: { fields: { field: str(1), description: str(2), reason: str(3), localized_message: { type: 'google.rpc.LocalizedMessage', id: 4 } } },
              },
            },
            RequestInfo: { fields: { request_id: str(1), serving_data: str(2) } },
            ResourceInfo: { fields: { resource_type: str(1), resource_name: str(2), owner: str(3), description: str(4) } },
            Help: {
              fields: { links: { type: 'Link', id: 1, rule: 'repeated' } },
              nested: { Link: { fields: { description: str(1), url: str(2) } } },
            },
            LocalizedMessage: { fields: { locale: str(1), message: str(2) } },
          },
        },
      },
    },
  },
};

let rpcRoot: Root | null = null;

/** A root with google.rpc.Status, the error details and the WKTs they use. */
export function rpcStatusRoot(): Root {
  if (rpcRoot === null) {
    const root = new protobuf.Root();
    root.loadSync(['google/protobuf/any.proto', 'google/protobuf/duration.proto'], { keepCase: true });
    root.addJSON(RPC.nested);
    root.resolveAll();
    rpcRoot = root;
  }
  return rpcRoot;
}

/** google.rpc.Status, for printing error bodies with protoToJson (its details resolve against the
 * options' registry first, then the error details above). */
export function rpcStatusType(): Type {
  return rpcStatusRoot().lookupType('google.rpc.Status');
}
