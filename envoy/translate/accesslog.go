package translate

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/structpb"
)

// AccessLogFormat is the json_format of Envoy's file access log: one entry
// per accesslog.Fields name (a test keeps the two equal), so Envoy writes the
// record the built-in data plane writes. A value that is exactly one
// operator keeps its type (numbers stay numbers); a missing value is null.
// Durations are Envoy's integer milliseconds.
func AccessLogFormat(gatewayID string) map[string]any {
	return map[string]any{
		"start_time":     "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%",
		"method":         "%REQ(:METHOD)%",
		"path":           "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
		"protocol":       "%PROTOCOL%",
		"response_code":  "%RESPONSE_CODE%",
		"response_flags": "%RESPONSE_FLAGS%",
		"bytes_received": "%BYTES_RECEIVED%",
		"bytes_sent":     "%BYTES_SENT%",
		"duration":       "%DURATION%",
		// Not %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%: a header renders as a
		// JSON string, the schema wants an integer (or null when no
		// upstream was reached), which COMMON_DURATION gives.
		"upstream_service_time":     "%COMMON_DURATION(US_TX_BEG:US_RX_BEG:ms)%",
		"x_forwarded_for":           "%REQ(X-FORWARDED-FOR)%",
		"user_agent":                "%REQ(USER-AGENT)%",
		"request_id":                "%REQ(X-REQUEST-ID)%",
		"authority":                 "%REQ(:AUTHORITY)%",
		"upstream_host":             "%UPSTREAM_HOST%",
		"upstream_cluster":          "%UPSTREAM_CLUSTER%",
		"downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
		"api_instance":              "%METADATA(ROUTE:" + MetadataNamespace + ":api)%",
		"route":                     "%METADATA(ROUTE:" + MetadataNamespace + ":route)%",
		"gateway_id":                gatewayID,
		"trace_id":                  "%TRACE_ID%",
		"policy":                    "%DYNAMIC_METADATA(" + MetadataNamespace + ":policy)%",
		"policy_outcome":            "%DYNAMIC_METADATA(" + MetadataNamespace + ":policy_outcome)%",
	}
}

func accessLog(opts Options) (*accesslogv3.AccessLog, error) {
	format, err := structpb.NewStruct(AccessLogFormat(opts.GatewayID))
	if err != nil {
		return nil, fmt.Errorf("json_format: %w", err)
	}
	cfg, err := toAny(&filev3.FileAccessLog{
		Path: opts.AccessLogPath,
		AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: format},
		}},
	})
	if err != nil {
		return nil, err
	}
	return &accesslogv3.AccessLog{
		Name:       wellknown.FileAccessLog,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: cfg},
	}, nil
}
