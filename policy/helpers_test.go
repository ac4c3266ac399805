package policy_test

import "strings"

// The gateway, upstream and recorder these tests run policies with are
// internal/policytest's, shared with policy/native.

func contains(s, sub string) bool { return strings.Contains(s, sub) }
