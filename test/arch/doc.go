// Package arch holds the tests that keep the module's shape the one
// DESIGN.md and docs/architecture.md describe: which packages may import
// which, and what the built-in data plane may link. They read the real
// import graph with `go list`, so a change that crosses a boundary fails
// `go test ./...` instead of waiting for a reviewer.
package arch
