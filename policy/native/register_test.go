package native_test

// The policies under test register themselves when the package is linked;
// the tests drive them by name through internal/policytest.
import _ "github.com/flexgw/flexgw/policy/native"
