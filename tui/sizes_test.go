package tui

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// longNames are names that share a long prefix and differ at the end, as
// regional deployments of one service do.
var longNames = []string{"shop/catalog-service-eu-west-1", "shop/catalog-service-us-east-1", "shop/catalog-service-ap-south-1"}

// suffixes are what tells longNames apart.
var suffixes = []string{"eu-west-1", "us-east-1", "ap-south-1"}

// longNameModel is the fixture with its APIs, upstream services and log
// records renamed to longNames.
func longNameModel(t *testing.T) *model {
	m := fixtureModel(t)
	top := *m.top
	top.APIs = slices.Clone(top.APIs)
	for i := range top.APIs {
		if i < len(longNames) && top.APIs[i].Name != "unmatched" {
			top.APIs[i].Name = longNames[i]
		}
	}
	top.Upstreams = slices.Clone(top.Upstreams)
	for i := range top.Upstreams {
		top.Upstreams[i].Service = longNames[i%len(longNames)]
		top.Upstreams[i].Endpoint = fmt.Sprintf("10.20.%d.11:8443", i)
	}
	m.Update(topMsg{top: &top})
	recs := fixtureLogs(t)
	for i := range recs {
		if recs[i].API != "" {
			recs[i].API = longNames[i%len(longNames)]
			recs[i].Path = "/catalog/v2/items/" + suffixes[i%len(suffixes)] + "/stock"
		}
	}
	m.Update(logsMsg{recs: recs, reset: true, gen: 2})
	return m
}

// TestGoldenSizes keeps frames at 80x24 and 160x40 (plain profile) of the
// views that list names, and checks what the layout promises: names are
// cut in the middle so rows stay distinct at 80 columns, and at 160 the
// names are whole while sparklines take what is left.
func TestGoldenSizes(t *testing.T) {
	for _, size := range []struct{ w, h int }{{80, 24}, {160, 40}} {
		for _, view := range []struct {
			name, key string
		}{{"apis", "1"}, {"upstreams", "2"}, {"logs", "3"}} {
			t.Run(fmt.Sprintf("%s_%dx%d", view.name, size.w, size.h), func(t *testing.T) {
				m := longNameModel(t)
				m.Update(tea.WindowSizeMsg{Width: size.w, Height: size.h})
				press(m, view.key)
				frame := plainFrame(m)
				golden(t, fmt.Sprintf("size_%s_%dx%d", view.name, size.w, size.h), frame)
				for _, l := range strings.Split(frame, "\n") {
					if width(l) > size.w {
						t.Errorf("line wider than %d: %q", size.w, l)
					}
				}
				// Every distinguishing suffix is on screen (the APIs tab
				// lists two of the names, beside unmatched).
				want := suffixes
				if view.name == "apis" {
					want = suffixes[:2]
				}
				for _, s := range want {
					if !strings.Contains(frame, s) {
						t.Errorf("%s at %dx%d loses %q, the part that tells the names apart:\n%s", view.name, size.w, size.h, s, frame)
					}
				}
				if size.w == 160 && view.name == "apis" {
					for _, n := range longNames[:2] {
						if !strings.Contains(frame, n) {
							t.Errorf("at 160 columns %q is cut:\n%s", n, frame)
						}
					}
					if !strings.Contains(frame, "RPS trend") {
						t.Errorf("at 160 columns the sparklines are gone:\n%s", frame)
					}
				}
			})
		}
	}
}

// TestClientErrorRowsColoured: an API answering mostly 4xx is coloured as
// a warning; a healthy one is not.
func TestClientErrorRowsColoured(t *testing.T) {
	m := fixtureModel(t)
	press(m, "down") // the cursor's reverse video would hide the colour of row 0
	warn := m.st.warn.open
	if warn == "" {
		t.Fatal("no warning colour in the default profile")
	}
	var found bool
	for _, l := range strings.Split(m.View().Content, "\n") {
		plain := strings.TrimSpace(ansi.Strip(l))
		switch {
		case strings.HasPrefix(plain, "+ unmatched"): // 100 % 4xx
			found = true
			if !strings.Contains(l, warn) {
				t.Errorf("4xx-heavy row not coloured: %q", l)
			}
		case strings.HasPrefix(plain, "+ default/users"): // 4 % 4xx
			if strings.HasPrefix(strings.TrimPrefix(l, "  "), warn) {
				t.Errorf("healthy row coloured as a warning: %q", l)
			}
		}
	}
	if !found {
		t.Fatalf("no unmatched row:\n%s", plainFrame(m))
	}
}
