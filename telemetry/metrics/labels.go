package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// methods is the closed set of method label values; anything else is
// OTHER, so a client inventing methods cannot create series.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER"}

const numMethods = len(methods)

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "DELETE":
		return 4
	case "CONNECT":
		return 5
	case "OPTIONS":
		return 6
	case "TRACE":
		return 7
	case "PATCH":
		return 8
	}
	return numMethods - 1
}

// classes are the code_class label values; "none" is a request that got no
// response (the client went away first, response code 0).
var classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "none"}

const numClasses = len(classes)

func classIndex(code int) int {
	if code >= 100 && code < 600 {
		return code/100 - 1
	}
	return numClasses - 1
}

// dtoMetric returns a collected metric's label pairs.
func dtoMetric(m prometheus.Metric) [][2]string {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		return nil
	}
	out := make([][2]string, 0, len(pb.GetLabel()))
	for _, lp := range pb.GetLabel() {
		out = append(out, [2]string{lp.GetName(), lp.GetValue()})
	}
	return out
}
