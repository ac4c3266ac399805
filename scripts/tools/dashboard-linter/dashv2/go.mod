// A stand-in for github.com/grafana/grafana/apps/dashboard, which the Go
// module proxy reachable here does not serve (403). dashboard-linter imports
// it only to read Grafana's v2 (kubernetes-shaped) dashboard schema; flexgw's
// dashboards are classic JSON, so that path never runs for them. The types
// in pkg/apis/dashboard/v2 are written from the schema's published JSON
// field names and hold exactly what the linter reads.
module github.com/grafana/grafana/apps/dashboard

go 1.24
