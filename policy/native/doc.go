// Package native holds Flex's native-ext-authz-flex and
// native-ext-proc-flex: on the built-in data plane they speak Envoy's own
// service protocols (envoy.service.auth.v3 over gRPC or Envoy's HTTP
// authorization convention; envoy.service.ext_proc.v3) to the user's
// services, exactly as Envoy's ext_authz and ext_proc filters do, so one
// authorization or processing service serves both data planes.
//
// They live apart from package policy because they link go-control-plane's
// service definitions, which the policy engine itself must not (test/arch).
// They register with policy.Register like every other policy; agent's
// compile path imports this package, so `validate` and `run` both know them.
//
// Decisions that follow Envoy: a failed or timed-out authorization call
// denies with 403 (status_on_error); a denial carries the service's status,
// headers and body; a failed processor answers 500 (504 on the message
// timeout) unless failureModeAllow. Bodies held for a processor are bounded
// by Envoy's default 1 MiB buffer (buffered: 413 over it; bufferedPartial:
// the rest follows unprocessed); a streamed request body is sent chunk by
// chunk and forwarded once the processor has answered the last chunk.
package native
