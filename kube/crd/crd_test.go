package crd

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/config"
	"go.yaml.in/yaml/v3"
)

// TestCommittedCRDsUpToDate fails when charts/flexgw/crds differs from
// what the schema generates: run `go generate ./kube/crd`.
func TestCommittedCRDsUpToDate(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "charts", "flexgw", "crds")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok && strings.HasPrefix(e.Name(), Group) {
			t.Errorf("%s: not generated any more; delete it", e.Name())
		}
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./kube/crd)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./kube/crd", name)
		}
	}
}

const probe = "zzProbeField"

// TestSchemaFieldsAreTheDecoders walks every object of every kind's schema
// and asks package config's decoder which fields it accepts at that place:
// a document with an unknown field there gets "unknown field (expected one
// of ...)". The schema must list exactly those fields, or the API server
// would prune a field the gateway reads, or keep one it rejects.
func TestSchemaFieldsAreTheDecoders(t *testing.T) {
	for _, k := range Kinds() {
		// Every version the CRD serves, against the decoder at that
		// version: conversion is None, so one schema must fit them all.
		for _, v := range k.Versions {
			checkSchemaVersion(t, k, Group+"/"+v)
		}
	}
}

func checkSchemaVersion(t *testing.T, k Kind, apiVersion string) {
	{
		checked := 0
		var walk func(s *Schema, path string, wrap func(any) any)
		walk = func(s *Schema, path string, wrap func(any) any) {
			switch {
			case s.Preserve:
				return // free-form: each policy checks its own config
			case s.Type == "array" && s.Items != nil:
				walk(s.Items, path+"[0]", func(v any) any { return wrap([]any{v}) })
			case s.Type == "object" && s.AdditionalProperties != nil:
				walk(s.AdditionalProperties, path+".x", func(v any) any { return wrap(map[string]any{"x": v}) })
			case s.Type == "object":
				checked++
				want := make([]string, 0, len(s.Properties))
				for name := range s.Properties {
					want = append(want, name)
				}
				sort.Strings(want)
				got := decoderFields(t, k.Kind, apiVersion, wrap(map[string]any{probe: 1}))
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("%s %s %s: schema has fields %v, config's decoder accepts %v; make kube/crd/schema.go match and run go generate ./kube/crd", apiVersion, k.Kind, path, want, got)
				}
				for name, child := range s.Properties {
					walk(child, path+"."+name, func(v any) any {
						m := map[string]any{name: v}
						if name == "selector" {
							m["kind"] = "Selector" // the decoder reads a selector only with kind: Selector
						}
						return wrap(m)
					})
				}
			}
		}
		walk(k.Spec, "spec", func(v any) any { return v })
		if checked < 2 {
			t.Errorf("%s %s: only %d objects checked", apiVersion, k.Kind, checked)
		}
	}
}

// decoderFields parses a document whose spec is given and returns the
// fields the decoder listed for the probe field.
func decoderFields(t *testing.T, kind, apiVersion string, spec any) []string {
	t.Helper()
	doc, err := yaml.Marshal(map[string]any{
		"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": "probe"}, "spec": spec,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.Parse([]config.File{{Name: "probe.yaml", Data: doc}}, config.Options{LookupEnv: func(string) (string, bool) { return "", true }})
	var list config.ErrorList
	if err != nil {
		list, _ = err.(config.ErrorList)
	}
	const prefix = "unknown field (expected one of "
	for _, e := range list {
		if strings.HasSuffix(e.Field, "."+probe) && strings.HasPrefix(e.Reason, prefix) {
			fields := strings.Split(strings.TrimSuffix(strings.TrimPrefix(e.Reason, prefix), ")"), ", ")
			sort.Strings(fields)
			return fields
		}
	}
	t.Fatalf("%s: the decoder did not report the probe field in\n%s\nerrors: %v", kind, doc, err)
	return nil
}
