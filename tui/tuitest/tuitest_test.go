package tuitest

import "testing"

func TestAPIRPS(t *testing.T) {
	frame := `flexgw top · gw · v1 · builtin · up 3s · snapshot v1
total 12.0 rps · errors 0% · p50 1.00ms · p95 - · p99 - · denials 0 · 10s window

APIs
  NAME                         RPSv  2XX%
  - default/orders (1)         12.0   100
     route orders-0            12.0   100
  + default/big (3)            1.2M   100
  - default/idle (1)              0     0
`
	for _, c := range []struct {
		api  string
		want float64
		ok   bool
	}{
		{"default/orders", 12, true},
		{"default/big", 1.2e6, true},
		{"default/idle", 0, true},
		{"orders-0", 0, false},
		{"default/missing", 0, false},
	} {
		got, ok := APIRPS(frame, c.api)
		if got != c.want || ok != c.ok {
			t.Errorf("APIRPS(%q) = %v, %v; want %v, %v", c.api, got, ok, c.want, c.ok)
		}
	}
}
